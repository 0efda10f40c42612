"""A real Prometheus for tests: Debian's binary on a free loopback port, temporary storage,
one-second scrapes and rule evaluations, queried over its HTTP API."""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any, TypeVar

import httpx
import yaml

T = TypeVar("T")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def eventually(probe: Callable[[], Awaitable[T | None]], *, timeout: float, what: str) -> T:
    """Poll `probe` until it returns something other than None; fail after `timeout` seconds."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        found = await probe()
        if found is not None:
            return found
        if loop.time() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        await asyncio.sleep(0.2)


class Prometheus:
    """A running Prometheus; `query` and `rules` speak its /api/v1."""

    def __init__(self, url: str, client: httpx.AsyncClient, log: Path) -> None:
        self.url = url
        self.client = client
        self.log = log

    async def query(self, expr: str) -> list[dict[str, Any]]:
        """An instant query's result vector; an expression Prometheus refuses fails the test."""
        response = await self.client.get("/api/v1/query", params={"query": expr})
        body = response.json()
        assert body["status"] == "success", f"{expr}: {body.get('error')}"
        result: list[dict[str, Any]] = body["data"]["result"]
        return result

    async def value(self, expr: str) -> float | None:
        """The single sample of `expr`, or None when it has none."""
        result = await self.query(expr)
        assert len(result) <= 1, f"{expr}: {result}"
        return float(result[0]["value"][1]) if result else None

    async def label_values(self, label: str, match: str) -> list[str]:
        response = await self.client.get(f"/api/v1/label/{label}/values", params={"match[]": match})
        values: list[str] = response.json()["data"]
        return values

    async def rules(self) -> list[dict[str, Any]]:
        body = (await self.client.get("/api/v1/rules")).json()
        return [rule for group in body["data"]["groups"] for rule in group["rules"]]

    async def alert_state(self, name: str) -> str:
        """`inactive`, `pending` or `firing`."""
        [rule] = [r for r in await self.rules() if r["name"] == name]
        state: str = rule["state"]
        return state


@contextlib.asynccontextmanager
async def running_prometheus(
    binary: str,
    workdir: Path,
    *,
    scrape_configs: list[dict[str, Any]],
    rule_files: list[Path],
) -> AsyncIterator[Prometheus]:
    """Start Prometheus on 127.0.0.1 with `scrape_configs` every second; stop it after."""
    config = {
        "global": {"scrape_interval": "1s", "scrape_timeout": "1s", "evaluation_interval": "1s"},
        "rule_files": [str(path) for path in rule_files],
        "scrape_configs": scrape_configs,
    }
    config_file = workdir / "prometheus.yml"
    config_file.write_text(yaml.safe_dump(config))
    port = free_port()
    log = workdir / "prometheus.log"
    with log.open("wb") as out:
        process = await asyncio.create_subprocess_exec(
            binary,
            f"--config.file={config_file}",
            f"--storage.tsdb.path={workdir / 'data'}",
            f"--web.listen-address=127.0.0.1:{port}",
            stdout=out,
            stderr=out,
        )
    url = f"http://127.0.0.1:{port}"
    try:
        async with httpx.AsyncClient(base_url=url, timeout=5) as client:

            async def ready() -> bool | None:
                if process.returncode is not None:
                    raise AssertionError(f"prometheus exited: {log.read_text()[-2000:]}")
                with contextlib.suppress(httpx.TransportError):
                    if (await client.get("/-/ready")).status_code == 200:
                        return True
                return None

            await eventually(ready, timeout=30, what="prometheus /-/ready")
            yield Prometheus(url, client, log)
    finally:
        if process.returncode is None:
            process.terminate()
            try:
                async with asyncio.timeout(10):
                    await process.wait()
            except TimeoutError:
                process.kill()
                await process.wait()
