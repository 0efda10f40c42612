"""The README's "Using it" walk-through, run as written: its own commands, real processes.

The commands come from the README itself, so the two cannot drift. The section holds two bash
blocks: the first terminal's (its last command is the gateway, which keeps running) and the
second terminal's (its last command is the websocket client). Each block runs as one bash script
in a scratch folder that looks like the repository root to them: `.venv` (the virtualenv
running these tests) and `deploy/` are symlinked into it, and `keys/` is written there.

The only substitutions, so that the run needs no fixed ports: the gateway gets
GAMESYNC_PORT=0 and GAMESYNC_INTERNAL_PORT=0 (its command names no port, so the environment
applies), and the second block's `127.0.0.1:8000`/`127.0.0.1:9000` (checked to be the
defaults) become the addresses the gateway printed in its GAMESYNC_READY line. Ctrl-D and
Ctrl-C are what a person would press: the client's stdin is closed, and the first terminal's
process group gets SIGINT.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import re
import signal
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from repo_tree import ROOT

from gamesync.settings import GatewaySettings

_FENCE = re.compile(r"^```bash\n(.*?)^```$", re.MULTILINE | re.DOTALL)
_ESCAPES = re.compile(r"\x1b(?:\[[0-9;]*[A-Za-z]|[78])")
_DEFAULTS = GatewaySettings.model_fields
DEFAULT_PUBLIC = f"127.0.0.1:{_DEFAULTS['port'].default}"
DEFAULT_INTERNAL = f"127.0.0.1:{_DEFAULTS['internal_port'].default}"


def using_it_blocks() -> list[str]:
    """The bash blocks of the README's "Using it" section, in order."""
    readme = (ROOT / "README.md").read_text()
    section = readme.split("\n## Using it\n", 1)[1].split("\n## ", 1)[0]
    return [match.group(1) for match in _FENCE.finditer(section)]


def _commands(block: str) -> list[str]:
    return [line for line in block.splitlines() if line.strip() and not line.startswith("#")]


def test_the_section_is_two_terminals_gateway_then_client() -> None:
    first, second = using_it_blocks()
    assert _commands(first)[-1].startswith("gamesync gateway ")
    assert "--port" not in _commands(first)[-1]  # the run below relies on the defaults
    assert _commands(second)[-1].startswith("python -m websockets ")
    assert f"http://{DEFAULT_INTERNAL}" in second
    assert f"ws://{DEFAULT_PUBLIC}/" in second


def test_the_keys_folder_the_readme_writes_is_ignored_by_git() -> None:
    result = subprocess.run(
        ["git", "check-ignore", "--no-index", "--quiet", "keys/signer.json"],
        cwd=ROOT,
        timeout=30,
        check=False,
    )
    assert result.returncode == 0, "keys/ (a private signer.json) is not in .gitignore"


@pytest.fixture
def scratch_root(tmp_path: Path) -> Path:
    """A folder that looks like the repository root to the README's commands."""
    venv = Path(sys.prefix)
    if not (venv / "bin" / "activate").is_file():
        pytest.skip("the tests do not run in a virtualenv with bin/activate")
    (tmp_path / ".venv").symlink_to(venv)
    (tmp_path / "deploy").symlink_to(ROOT / "deploy")
    return tmp_path


def _environment(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("GAMESYNC_")}
    env.pop("VIRTUAL_ENV", None)
    return {**env, "PYTHONUNBUFFERED": "1", **extra}


@contextlib.asynccontextmanager
async def _terminal(
    script: str, cwd: Path, env: dict[str, str]
) -> AsyncIterator[asyncio.subprocess.Process]:
    """Run a bash script in its own process group (a terminal); kill whatever is left after."""
    proc = await asyncio.create_subprocess_exec(
        "bash",
        "-e",
        "-c",
        script,
        cwd=cwd,
        env=env,
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        start_new_session=True,
    )
    try:
        yield proc
    finally:
        if proc.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            await proc.wait()


async def _ready_line(gateway: asyncio.subprocess.Process) -> tuple[str, str]:
    assert gateway.stdout is not None
    async with asyncio.timeout(60):
        while True:
            line = (await gateway.stdout.readline()).decode()
            if not line:
                err = (await gateway.stderr.read()).decode() if gateway.stderr else ""
                raise AssertionError(f"the first terminal ended before the gateway was up: {err}")
            match = re.match(r"GAMESYNC_READY public=http://(\S+) internal=http://(\S+)", line)
            if match:
                return match.group(1), match.group(2)


async def _messages_until_snapshot(client: asyncio.subprocess.Process) -> list[dict[str, Any]]:
    """What the interactive client printed as received (`< {...}`), up to the snapshot."""
    assert client.stdout is not None
    received: list[dict[str, Any]] = []
    async with asyncio.timeout(60):
        while not any(m.get("type") == "snapshot" for m in received):
            raw = await client.stdout.readline()
            if not raw:
                err = (await client.stderr.read()).decode() if client.stderr else ""
                raise AssertionError(f"the client ended before a snapshot: {received} {err}")
            line = _ESCAPES.sub("", raw.decode()).strip()
            if line.startswith("< "):
                received.append(json.loads(line[2:]))
    return received


async def test_the_walk_through_ends_with_the_snapshot_and_its_viewer(scratch_root: Path) -> None:
    first, second = using_it_blocks()
    envelope = json.loads((ROOT / "deploy" / "examples" / "envelope.json").read_text())
    gateway_env = _environment(GAMESYNC_PORT="0", GAMESYNC_INTERNAL_PORT="0")
    async with _terminal(first, scratch_root, gateway_env) as gateway:
        public, internal = await _ready_line(gateway)
        second = second.replace(f"http://{DEFAULT_INTERNAL}", f"http://{internal}")
        second = second.replace(f"ws://{DEFAULT_PUBLIC}/", f"ws://{public}/")
        async with _terminal(second, scratch_root, _environment()) as client:
            received = await _messages_until_snapshot(client)
            assert client.stdin is not None
            client.stdin.close()  # Ctrl-D
            async with asyncio.timeout(30):
                rest, err = await client.communicate()
            assert client.returncode == 0, err.decode()
        os.killpg(gateway.pid, signal.SIGINT)  # Ctrl-C in the first terminal
        async with asyncio.timeout(60):
            _, gateway_log = await gateway.communicate()
    assert [m["type"] for m in received] == ["welcome", "subscribed", "snapshot"]
    assert received[0]["userId"] == "7"
    snapshot = received[-1]
    assert (snapshot["gameId"], snapshot["gameVersion"]) == (42, envelope["version"])
    assert snapshot["data"] == envelope["snapshot"]
    assert snapshot["viewer"] == envelope["viewers"]["7"]
    others = [card for user, v in envelope["viewers"].items() if user != "7" for card in v["hand"]]
    printed = json.dumps(received) + rest.decode()
    assert not [card for card in others if f'"{card}"' in printed]
    assert "Connection closed: 1000" in rest.decode()
    log = gateway_log.decode()
    assert gateway.returncode == 0, log
    assert "Traceback" not in log
    assert '"level": "warning"' not in log, log
    assert '"level": "error"' not in log, log
    assert (scratch_root / "keys" / "signer.json").is_file()
