"""`gamesync gateway` as a real process: dev mode banner and SIGTERM drain."""

from __future__ import annotations

import asyncio
import os
import re
import signal
import sys
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass

import httpx
import pytest
import websockets
from wire import PUBLISH_TOKEN, Keys, close_code, recv_json


@dataclass
class Process:
    proc: asyncio.subprocess.Process
    public: str
    internal: str
    stderr: list[str]


async def _start(*args: str) -> Process:
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "gamesync",
        "gateway",
        "--port",
        "0",
        "--internal-port",
        "0",
        *args,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    assert proc.stdout is not None
    async with asyncio.timeout(20):
        while True:
            line = (await proc.stdout.readline()).decode()
            if not line:
                err = (await proc.stderr.read()).decode() if proc.stderr else ""
                raise AssertionError(f"gateway exited early: {err}")
            if line.startswith("GAMESYNC_READY"):
                match = re.search(r"public=(\S+) internal=(\S+)", line)
                assert match is not None
                return Process(proc, match.group(1), match.group(2), [])


@pytest.fixture
async def processes() -> AsyncIterator[list[Process]]:
    started: list[Process] = []
    yield started
    for p in started:
        if p.proc.returncode is None:
            p.proc.kill()
            await p.proc.wait()


async def test_dev_mode_prints_a_working_token_and_serves_the_console_config(
    processes: list[Process],
) -> None:
    process = await _start("--dev")
    processes.append(process)
    assert process.proc.stderr is not None
    banner = ""
    async with asyncio.timeout(5):
        while "publish token:" not in banner:
            banner += (await process.proc.stderr.readline()).decode()
    assert "DEV MODE" in banner
    token = re.search(r"token \(dev\):\s+(\S+)", banner)
    assert token is not None
    ws_url = process.public.replace("http://", "ws://") + "/ws?token=" + token.group(1)
    async with websockets.connect(ws_url) as ws:
        assert (await recv_json(ws))["userId"] == "dev"
    async with httpx.AsyncClient(base_url=process.public) as client:
        config = (await client.get("/console-config.json")).json()
    assert config["wsUrl"].endswith("/ws")
    assert config["token"]


async def test_sigterm_drains_with_reconnect_hints_then_exits(
    processes: list[Process], keys: Keys
) -> None:
    process = await _start(
        "--keys",
        str(keys.jwks_path),
        "--publish-token",
        PUBLISH_TOKEN,
        "--authz",
        "open",
        "--drain-seconds",
        "1.5",
    )
    processes.append(process)
    url = process.public.replace("http://", "ws://") + "/ws/games/1"
    clients = [
        await websockets.connect(
            url, additional_headers={"Authorization": f"Bearer {keys.token(str(i))}"}
        )
        for i in range(6)
    ]
    for ws in clients:
        await recv_json(ws)  # welcome
        await recv_json(ws)  # subscribed
    started = time.monotonic()
    process.proc.send_signal(signal.SIGTERM)
    async with httpx.AsyncClient(base_url=process.internal) as client:
        async with asyncio.timeout(5):
            while (await client.get("/readyz")).status_code != 503:
                await asyncio.sleep(0.02)
    hints = []
    codes = []
    for ws in clients:
        hint = await recv_json(ws, timeout=5)
        hints.append(hint)
        codes.append(await close_code(ws))
    assert {h["type"] for h in hints} == {"reconnect"}
    assert all(0 < h["retryAfterMs"] <= 2000 for h in hints)
    assert codes == [1012] * 6
    async with asyncio.timeout(10):
        assert await process.proc.wait() == 0
    assert time.monotonic() - started < 1.5 + 3.0


async def test_ctrl_c_of_an_idle_gateway_logs_no_warning(
    processes: list[Process], keys: Keys
) -> None:
    process = await _start("--keys", str(keys.jwks_path), "--log-format", "text")
    processes.append(process)
    process.proc.send_signal(signal.SIGINT)
    async with asyncio.timeout(10):
        await process.proc.wait()
    assert process.proc.stderr is not None
    log = (await process.proc.stderr.read()).decode()
    assert "draining 0 connections" in log
    assert "WARNING" not in log, log
