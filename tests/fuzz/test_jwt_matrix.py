"""The JWT matrix against a live gateway (issue 12, "The project proves it"): 0 accepted.

Every crafted token of `jwt_matrix.ROWS` is offered three ways (the handshake's Authorization
header, a first `auth` message, and a renewal on a live connection) and must get exactly the
answer its row states. docs/RELIABILITY.md shows the same rows (checked below).
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from jwt_matrix import AUDIENCE, CONTROL, ISSUER, ROWS, Answer, Row, World, render_table

from chaos.processes import GatewayProcess
from chaos.rfc6455 import (
    OP_CLOSE,
    OP_TEXT,
    ServerFrames,
    client_frame,
    handshake_request,
    parse_http_head,
)

CHANNELS = ("header", "message", "renewal")
RELIABILITY = Path(__file__).resolve().parents[2] / "docs" / "RELIABILITY.md"


@dataclass(frozen=True)
class Seen:
    """What the gateway did with one offered token."""

    accepted: bool
    answer: Answer


@pytest.fixture(scope="module")
def world() -> World:
    return World()


@pytest.fixture(scope="module")
def verifier(tmp_path_factory: pytest.TempPathFactory, world: World) -> Iterator[GatewayProcess]:
    """A gateway with both public keys, a required audience and issuer, defaults otherwise."""
    workdir = tmp_path_factory.mktemp("jwt-matrix")
    (workdir / "jwks.json").write_text(json.dumps(world.jwks))
    gateway = GatewayProcess.launch(
        workdir,
        "jwt-gw",
        "--keys", str(workdir / "jwks.json"),
        "--audience", AUDIENCE,
        "--issuer", ISSUER,
        "--authz", "open",
    ).wait_ready()  # fmt: skip
    yield gateway
    gateway.stop()


async def _offer(gateway: GatewayProcess, channel: str, token: str, control: str) -> Seen:
    """Offer `token` by `channel`; what came back (a `welcome` for it means accepted)."""
    reader, writer = await asyncio.open_connection(gateway.host, gateway.port, limit=1 << 20)
    by_header = token if channel == "header" else control if channel == "renewal" else None
    headers = {"Authorization": f"Bearer {by_header}"} if by_header is not None else {}
    writer.write(handshake_request(gateway.host, gateway.port, "/ws", headers))
    welcomes_before_offer = 1 if channel == "renewal" else 0
    frames, data, welcomes, error = ServerFrames(), b"", 0, None
    try:
        async with asyncio.timeout(5):
            while (parsed := parse_http_head(data)) is None:
                chunk = await reader.read(65536)
                if not chunk:
                    return Seen(False, Answer(http=0))
                data += chunk
            if parsed[0].status != 101:
                return Seen(False, Answer(http=parsed[0].status))
            data = parsed[1]
            if channel != "header":  # only after the 101: a client waits for it (RFC 6455 §4.1)
                auth = json.dumps({"type": "auth", "token": token}).encode()
                writer.write(client_frame(OP_TEXT, auth))
            while True:
                for frame in frames.feed(data):
                    if frame.opcode == OP_TEXT:
                        message = json.loads(frame.payload)
                        if message["type"] == "welcome":
                            welcomes += 1
                            if welcomes > welcomes_before_offer:
                                return Seen(True, Answer())
                        elif message["type"] == "error":
                            error = message["code"]
                    elif frame.opcode == OP_CLOSE:
                        return Seen(False, Answer(frame.close_code, error))
                data = await reader.read(65536)
                if not data:
                    return Seen(False, Answer(close=None, error=error))
    finally:
        writer.transport.abort()


def _params() -> list[object]:
    params = []
    for row in ROWS:
        for channel in CHANNELS:
            missing = row.missing.get(channel)
            marks = [pytest.mark.xfail(reason=missing, strict=True)] if missing else []
            params.append(pytest.param(row, channel, id=f"{row.case}-{channel}", marks=marks))
    return params


@pytest.mark.parametrize(("row", "channel"), _params())
async def test_a_crafted_token_is_refused_with_its_rows_answer(
    row: Row, channel: str, world: World, verifier: GatewayProcess
) -> None:
    seen = await _offer(verifier, channel, row.make(world), CONTROL.make(world))
    expected = row.by_header if channel == "header" else row.by_message
    assert not seen.accepted, f"{row.case} accepted by {channel}"
    assert seen.answer == expected
    assert verifier.alive


@pytest.mark.parametrize("channel", CHANNELS)
async def test_the_control_token_is_accepted_by_every_channel(
    channel: str, world: World, verifier: GatewayProcess
) -> None:
    token = CONTROL.make(world)
    seen = await _offer(verifier, channel, token, token)
    assert seen.accepted


def test_the_gateway_logged_no_traceback(verifier: GatewayProcess) -> None:
    assert verifier.tracebacks() == []


def test_reliability_doc_shows_the_jwt_matrix_as_tested() -> None:
    text = RELIABILITY.read_text()
    start, end = "<!-- jwt-matrix -->\n", "\n<!-- /jwt-matrix -->"
    assert start in text, f"docs/RELIABILITY.md lacks the {start.strip()} block"
    shown = text[text.index(start) + len(start) : text.index(end)]
    assert shown == render_table(), f"update docs/RELIABILITY.md's table to:\n{render_table()}"
