"""`gamesync publish` over HTTP, and the CLI's answers to bad input."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest
from wire import PUBLISH_TOKEN, connect, envelope, recv_until

from gamesync.cli import main
from gamesync.server import GatewayServer


async def test_publish_command_reaches_subscribers(
    gateway: GatewayServer, keys: object, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "envelope.json"
    path.write_text(json.dumps(envelope(8, 3)))
    argv = [
        "publish",
        "8",
        str(path),
        "--url",
        gateway.internal_url,
        "--publish-token",
        PUBLISH_TOKEN,
    ]
    async with await connect(gateway, "/ws/games/8", token=keys.token()) as ws:  # type: ignore[attr-defined]
        await recv_until(ws, lambda m: m["type"] == "subscribed")
        assert await asyncio.to_thread(main, argv) == 0
        assert (await recv_until(ws, lambda m: m["type"] == "snapshot"))["gameVersion"] == 3
    assert json.loads(capsys.readouterr().out) == {"published": True}
    assert await asyncio.to_thread(main, argv) == 0
    assert json.loads(capsys.readouterr().out) == {"published": False}


@pytest.mark.parametrize(
    ("content", "message"),
    [("{", "not valid JSON"), (json.dumps(envelope(9, 1)), "differs from the path")],
)
def test_publish_command_refuses_a_bad_file_before_sending(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], content: str, message: str
) -> None:
    path = tmp_path / "envelope.json"
    path.write_text(content)
    argv = ["publish", "8", str(path), "--url", "http://127.0.0.1:9", "--publish-token", "t"]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert message in err
    assert "Traceback" not in err


def test_gateway_refuses_bad_settings_with_one_clear_line(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert main(["gateway", "--broker", "kafka://x", "--port", "0"]) == 2
    err = capsys.readouterr().err
    assert "broker URL must start with" in err
    assert "Traceback" not in err
