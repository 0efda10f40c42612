"""`gamesync operator` as a separate process against KMock: quiet logs and a prompt, clean exit.

Driven as a platform team would: the process logs in through a kubeconfig, a GameSyncCluster is
created over the API, and the process gets SIGTERM.
"""

from __future__ import annotations

import asyncio
import os
import signal
import sys
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
import yaml
from api_calls import SUITE, operator_requests, ungranted
from gsc_builders import raw_spec
from kmock_world import NS, WORLD_AGENT, declare_resources

from gamesync_operator.crd import GROUP, KIND, PLURAL, VERSION

CLUSTERS_PATH = f"/apis/{GROUP}/{VERSION}/namespaces/{NS}/{PLURAL}"
#: What "well under a second" is held to (SIGTERM to exit, measured from outside the process).
SHUTDOWN_BUDGET = 1.0


class OperatorProcess:
    """A running `gamesync operator`; its output is collected line by line."""

    def __init__(self, proc: asyncio.subprocess.Process) -> None:
        self.proc = proc
        self.lines: list[str] = []
        self._reader = asyncio.create_task(self._read())

    async def _read(self) -> None:
        assert self.proc.stdout is not None
        async for raw in self.proc.stdout:
            self.lines.append(raw.decode(errors="replace").rstrip())

    async def until(self, predicate: Callable[[], Any], what: str, timeout: float = 20.0) -> None:
        deadline = time.monotonic() + timeout
        while not predicate():
            if self.proc.returncode is not None:
                raise AssertionError(f"the operator exited waiting for {what}:\n{self.log}")
            if time.monotonic() > deadline:
                raise AssertionError(f"timed out waiting for {what}:\n{self.log}")
            await asyncio.sleep(0.02)  # poll the condition; the process runs meanwhile

    async def terminate(self) -> float:
        """SIGTERM; seconds until the process exited."""
        started = time.monotonic()
        self.proc.send_signal(signal.SIGTERM)
        await asyncio.wait_for(self.proc.wait(), timeout=15)
        elapsed = time.monotonic() - started
        await self._reader
        return elapsed

    @property
    def log(self) -> str:
        return "\n".join(self.lines)


@asynccontextmanager
async def operator_process(
    kmock: Any, tmp_path: Path, *args: str
) -> AsyncIterator[OperatorProcess]:
    declare_resources(kmock, gateway_api=True)
    kubeconfig = tmp_path / "kubeconfig"
    server = str(kmock.url).rstrip("/")
    kubeconfig.write_text(
        yaml.safe_dump(
            {
                "apiVersion": "v1",
                "kind": "Config",
                "clusters": [{"name": "kmock", "cluster": {"server": server}}],
                "users": [{"name": "test", "user": {"token": "not-checked"}}],
                "contexts": [{"name": "kmock", "context": {"cluster": "kmock", "user": "test"}}],
                "current-context": "kmock",
            }
        )
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("KUBERNETES_")}
    env["KUBECONFIG"] = str(kubeconfig)
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "gamesync",
        "operator",
        "-n",
        NS,
        *args,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
        env=env,
    )
    running = OperatorProcess(proc)
    try:
        yield running
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
    recorded = operator_requests(kmock)
    SUITE.calls.update(r.call for r in recorded)
    refused = ungranted(recorded, clusterwide=False)
    assert not refused, f"the chart's RBAC does not grant: {refused}"


def _requests(kmock: Any, agent: str, plural: str, method: str, name: str | None = None) -> int:
    return sum(
        1
        for r in list(kmock)
        if r.headers.get("User-Agent", "").startswith(agent)
        and r.resource is not None
        and r.resource.plural == plural
        and str(r.method).upper().endswith(method)
        and (name is None or r.name == name)
    )


def _watching(kmock: Any) -> bool:
    """kopf watches the GameSyncClusters: the operator is up."""
    return any(
        r.resource is not None
        and r.resource.plural == PLURAL
        and r.params.get("watch") in ("true", "1")
        for r in list(kmock)
    )


async def _create(kmock: Any) -> None:
    body = {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": KIND,
        "metadata": {
            "name": "arena",
            "namespace": NS,
            "uid": "uid-arena",
            "generation": 1,
            "resourceVersion": "1",
        },
        "spec": raw_spec(),
    }
    async with httpx.AsyncClient(
        base_url=str(kmock.url).rstrip("/"), headers={"User-Agent": WORLD_AGENT}
    ) as api:
        (await api.post(CLUSTERS_PATH, json=body)).raise_for_status()


async def test_sigterm_just_after_a_create_exits_cleanly_well_under_a_second(
    kmock: Any, tmp_path: Path
) -> None:
    async with operator_process(kmock, tmp_path) as op:
        await op.until(lambda: _watching(kmock), "kopf watching")
        await _create(kmock)
        # A pass has started (it read the cluster) when the signal comes.
        await op.until(
            lambda: _requests(kmock, "gamesync-operator", PLURAL, "GET", "arena") >= 1,
            "the first pass",
        )
        elapsed = await op.terminate()
    assert op.proc.returncode == 0, op.log
    assert elapsed < SHUTDOWN_BUDGET, f"{elapsed:.2f}s to exit:\n{op.log}"
    assert not [line for line in op.lines if " ERROR " in line or "Traceback" in line], op.log


async def test_default_logs_say_what_changed_and_nothing_per_request_or_per_resync(
    kmock: Any, tmp_path: Path
) -> None:
    async with operator_process(kmock, tmp_path, "--interval", "0.2") as op:
        await op.until(lambda: _watching(kmock), "kopf watching")
        await _create(kmock)
        await op.until(
            lambda: any("created Deployment/arena" in line for line in op.lines), "created"
        )
        passes = _requests(kmock, "gamesync-operator", PLURAL, "GET", "arena")
        await op.until(
            lambda: _requests(kmock, "gamesync-operator", PLURAL, "GET", "arena") >= passes + 2,
            "two passes",
        )
        settled = len(op.lines)
        passes = _requests(kmock, "gamesync-operator", PLURAL, "GET", "arena")
        await op.until(
            lambda: _requests(kmock, "gamesync-operator", PLURAL, "GET", "arena") >= passes + 5,
            "five quiet resyncs",
        )
        quiet = op.lines[settled:]
        await op.terminate()
    assert quiet == [], "\n".join(quiet)
    changes = [line for line in op.lines if "gamesync_operator" in line and " INFO " in line]
    assert any("games/arena: created Service/arena" in line for line in changes), op.log
    for noisy in ("HTTP Request", "Handler", "/v1/stats"):
        assert not [line for line in op.lines if noisy in line], op.log
