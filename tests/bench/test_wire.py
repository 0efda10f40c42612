"""Client-side RFC 6455 framing shared by the load client and the tests (pure, no sockets)."""

from __future__ import annotations

import os
import struct
import subprocess
import sys

import pytest
from websockets.frames import Frame, Opcode
from websockets.protocol import State
from websockets.server import ServerProtocol

from gamesync.bench import wire


def server_frame(opcode: int, payload: bytes, *, fin: bool = True) -> bytes:
    n = len(payload)
    b0 = (0x80 if fin else 0) | opcode
    if n < 126:
        return struct.pack("!BB", b0, n) + payload
    if n < 65536:
        return struct.pack("!BBH", b0, 126, n) + payload
    return struct.pack("!BBQ", b0, 127, n) + payload


def test_parser_returns_messages_split_at_any_byte() -> None:
    stream = b"".join(
        server_frame(wire.OP_TEXT, body) for body in (b"a", b"x" * 300, b"y" * 70_000)
    )
    parser = wire.FrameParser()
    out: list[tuple[int, bytes]] = []
    for i in range(0, len(stream), 7):
        out += parser.feed(stream[i : i + 7])
    assert [(op, len(p)) for op, p in out] == [(1, 1), (1, 300), (1, 70_000)]


def test_parser_reassembles_fragments_around_a_control_frame() -> None:
    parser = wire.FrameParser()
    out = parser.feed(
        server_frame(wire.OP_TEXT, b"hel", fin=False)
        + server_frame(wire.OP_PING, b"p")
        + server_frame(wire.OP_CONT, b"lo")
    )
    assert out == [(wire.OP_PING, b"p"), (wire.OP_TEXT, b"hello")]


def test_client_frames_are_masked_with_their_length() -> None:
    frame = wire.client_frame(wire.OP_TEXT, b"x" * 200)
    assert frame[0] == 0x81
    assert frame[1] == 0x80 | 126
    assert struct.unpack("!H", frame[2:4])[0] == 200
    assert frame[8:] == b"x" * 200


def received_by_a_server(data: bytes) -> list[Frame]:
    """What a real websocket server (websockets' sans-I/O protocol) reads from these bytes."""
    server = ServerProtocol(state=State.OPEN, max_size=None)
    server.receive_data(data)
    events = server.events_received()
    assert server.state is State.OPEN  # no protocol error, no close
    return [e for e in events if isinstance(e, Frame)]


@pytest.mark.parametrize("size", [0, 1, 5, 125, 126, 65535, 65536])
@pytest.mark.parametrize("mask", [wire.ZERO_MASK, b"\x01\x80\xfe\x7f", b"\xde\xad\xbe\xef"])
def test_client_frames_of_any_length_and_mask_reach_a_server_intact(size: int, mask: bytes) -> None:
    payload = os.urandom(size)
    frame = wire.client_frame(wire.OP_BINARY, payload, mask=mask)
    [received] = received_by_a_server(frame)
    assert (received.opcode, received.fin, received.data) == (Opcode.BINARY, True, payload)


def test_a_masking_key_is_four_bytes() -> None:
    with pytest.raises(ValueError, match="4 bytes"):
        wire.client_frame(wire.OP_TEXT, b"x", mask=b"abc")


def test_close_code_reads_the_status_or_1005_when_there_is_none() -> None:
    assert wire.close_code(struct.pack("!H", 4408) + b"idle") == 4408
    assert wire.close_code(b"") == 1005


def test_only_a_101_status_line_accepts_the_upgrade() -> None:
    assert wire.upgrade_accepted(b"HTTP/1.1 101 Switching Protocols")
    assert not wire.upgrade_accepted(b"HTTP/1.1 403 Forbidden")


def test_the_framing_needs_only_the_standard_library() -> None:
    """The gateway tests import it without the bench extra (numpy, rich, matplotlib)."""
    code = (
        "import sys; import gamesync.bench.wire; "
        "extra = {'numpy', 'rich', 'matplotlib', 'socketio'} & set(sys.modules); "
        "assert not extra, extra"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=30)


def test_fields_are_read_with_or_without_spaces() -> None:
    compact = b'{"type":"snapshot","gameId":42,"gameVersion":17,"data":{"t":12.5,"x":1}}'
    spaced = b'42["m", {"gameId": 42, "gameVersion": 17, "data": {"t": 12.5}}]'
    for payload in (compact, spaced):
        assert wire.int_field(payload, b'"gameId"') == 42
        assert wire.int_field(payload, b'"gameVersion"') == 17
        assert wire.float_field(payload, b'"t"') == 12.5
    assert wire.int_field(compact, b'"missing"') is None


def test_handshake_offers_no_extension_and_carries_headers() -> None:
    request = wire.handshake_request(
        "127.0.0.1", 8000, "/ws/games/1", {"Authorization": "Bearer t"}
    )
    assert request.startswith(b"GET /ws/games/1 HTTP/1.1\r\n")
    assert b"Authorization: Bearer t\r\n" in request
    assert b"Sec-WebSocket-Extensions" not in request
    assert request.endswith(b"\r\n\r\n")
