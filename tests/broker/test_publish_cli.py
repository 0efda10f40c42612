"""`gamesync publish` as a user runs it: a separate process, its output and nothing else."""

from __future__ import annotations

import asyncio
import json
import sys
from pathlib import Path

from pods import PUBLISH_TOKEN, envelope

from gamesync.server import GatewayServer

GAMESYNC = [sys.executable, "-m", "gamesync"]


async def gamesync(*args: str) -> tuple[int, str, str]:
    proc = await asyncio.create_subprocess_exec(
        *GAMESYNC,
        *args,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(proc.communicate(), 30)
    assert proc.returncode is not None
    return proc.returncode, out.decode(), err.decode()


async def test_publish_over_http_prints_its_answer_and_no_http_client_log_lines(
    gateway: GatewayServer, tmp_path: Path
) -> None:
    path = tmp_path / "envelope.json"
    path.write_text(json.dumps(envelope(8, 3)))
    args = ("publish", "8", str(path), "--url", gateway.internal_url)
    code, out, err = await gamesync(*args, "--publish-token", PUBLISH_TOKEN)
    assert code == 0, err
    assert json.loads(out) == {"published": True}
    assert "HTTP Request" not in err
    assert "httpx" not in err
    assert err == ""


async def test_publish_to_an_in_process_broker_says_to_use_the_gateway(tmp_path: Path) -> None:
    path = tmp_path / "envelope.json"
    path.write_text(json.dumps(envelope(8, 3)))
    code, out, err = await gamesync("publish", "8", str(path), "--broker", "memory://")
    assert code == 2
    assert out == ""
    assert "memory:// broker lives inside one gateway" in err
    assert "--url" in err
    assert "Traceback" not in err
