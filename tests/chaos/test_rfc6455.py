"""The suites' own wire checker: it must catch what a server may not send, and count right."""

from __future__ import annotations

import struct

import pytest

from chaos.rfc6455 import (
    OP_CLOSE,
    OP_CONT,
    OP_PING,
    OP_TEXT,
    Frame,
    ServerFrames,
    WireViolation,
    parse_http_head,
)
from chaos.swarm import percentile


def server_frame(opcode: int, payload: bytes, *, fin: bool = True, first: int = 0) -> bytes:
    head = (0x80 if fin else 0) | opcode | first
    return struct.pack("!BB", head, len(payload)) + payload


def test_frames_split_anywhere_are_reassembled() -> None:
    data = server_frame(OP_TEXT, b"hel", fin=False) + server_frame(OP_CONT, b"lo")
    data += server_frame(OP_CLOSE, struct.pack("!H", 1012))
    parser = ServerFrames()
    frames = [f for i in range(len(data)) for f in parser.feed(data[i : i + 1])]
    assert frames == [Frame(OP_TEXT, b"hello"), Frame(OP_CLOSE, b"\x03\xf4")]
    assert frames[1].close_code == 1012


@pytest.mark.parametrize(
    "data",
    [
        bytes([0x81, 0x80 | 2]) + b"\0\0\0\0ok",  # masked
        server_frame(OP_TEXT, b"x", first=0x40),  # RSV1 without an extension
        server_frame(0x3, b""),  # reserved opcode
        server_frame(OP_PING, b"x", fin=False),  # fragmented control frame
        server_frame(OP_CONT, b"x"),  # continuation of nothing
        server_frame(OP_TEXT, b"a", fin=False) + server_frame(OP_TEXT, b"b"),  # interleaved
    ],
)
def test_what_a_server_may_not_send_is_a_violation(data: bytes) -> None:
    with pytest.raises(WireViolation):
        ServerFrames().feed(data)


def test_a_response_head_is_parsed_and_junk_is_a_violation() -> None:
    parsed = parse_http_head(b"HTTP/1.1 503 Busy\r\nRetry-After: 1\r\n\r\nrest")
    assert parsed is not None
    assert parsed[0].status == 503
    assert parsed[0].headers == {"retry-after": "1"}
    assert parsed[1] == b"rest"
    assert parse_http_head(b"HTTP/1.1 101 Switching") is None
    with pytest.raises(WireViolation):
        parse_http_head(b"SSH-2.0-OpenSSH\r\n\r\n")


def test_percentile_is_by_nearest_rank() -> None:
    values = list(range(1, 101))
    assert percentile(values, 99) == 99
    assert percentile(values, 50) == 50
    assert percentile([7.0], 99) == 7.0
