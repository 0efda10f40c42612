"""Just enough RFC 6455 for a bare websocket client: handshake, client frames, frame parsing.

The one copy of client-side framing: the bench's load client and the wire-level tests (a client
that stops reading or never answers pings, which the ``websockets`` library cannot play) both
use it. Pure functions and a sans-I/O parser; the caller does the I/O. Server frames are parsed
by slicing, and snapshot fields are read by searching the raw bytes, because a load client that
JSON-decodes every 2 KB message would saturate before the server does. Standard library only,
so the tests can import it without the ``bench`` extra.
"""

from __future__ import annotations

import base64
import os
import re
import struct

__all__ = [
    "OP_BINARY",
    "OP_CLOSE",
    "OP_CONT",
    "OP_PING",
    "OP_PONG",
    "OP_TEXT",
    "ZERO_MASK",
    "FrameParser",
    "client_frame",
    "close_code",
    "float_field",
    "handshake_request",
    "int_field",
    "upgrade_accepted",
]

OP_CONT, OP_TEXT, OP_BINARY, OP_CLOSE, OP_PING, OP_PONG = 0x0, 0x1, 0x2, 0x8, 0x9, 0xA

# A zero masking key is legal (RFC 6455 §5.3 only asks for unpredictability against
# intermediaries, which loopback has none of) and lets the load client skip the XOR.
ZERO_MASK = b"\x00\x00\x00\x00"
# RFC 6455 §7.1.5: the close code of a close frame that carries none.
NO_STATUS = 1005


def handshake_request(
    host: str, port: int, path: str, headers: dict[str, str] | None = None
) -> bytes:
    """Bytes of an HTTP/1.1 upgrade request that offers no extension (no permessage-deflate)."""
    key = base64.b64encode(os.urandom(16)).decode()
    lines = [
        f"GET {path} HTTP/1.1",
        f"Host: {host}:{port}",
        "Upgrade: websocket",
        "Connection: Upgrade",
        f"Sec-WebSocket-Key: {key}",
        "Sec-WebSocket-Version: 13",
    ]
    lines += [f"{name}: {value}" for name, value in (headers or {}).items()]
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


def upgrade_accepted(status_line: bytes) -> bool:
    """Whether the status line of the handshake response switches protocols (101)."""
    return b" 101 " in status_line


def client_frame(
    opcode: int, payload: bytes, mask: bytes = ZERO_MASK, *, fin: bool = True
) -> bytes:
    """One client frame (RFC 6455 §5.2), masked with the 4-byte ``mask`` (§5.3); ``fin=False``
    for a fragment that more of its message follows."""
    if len(mask) != 4:
        raise ValueError(f"a masking key is 4 bytes, not {len(mask)}")
    n = len(payload)
    first = (0x80 if fin else 0) | opcode
    if n < 126:
        head = struct.pack("!BB", first, 0x80 | n)
    elif n < 65536:
        head = struct.pack("!BBH", first, 0x80 | 126, n)
    else:
        head = struct.pack("!BBQ", first, 0x80 | 127, n)
    if mask != ZERO_MASK:
        key = (mask * (n // 4 + 1))[:n]
        payload = (int.from_bytes(payload, "big") ^ int.from_bytes(key, "big")).to_bytes(n, "big")
    return head + mask + payload


def close_code(payload: bytes) -> int:
    """The status code of a close frame's payload (RFC 6455 §5.5.1), 1005 when it has none."""
    return int.from_bytes(payload[:2], "big") if len(payload) >= 2 else NO_STATUS


class FrameParser:
    """Incremental parser of unmasked server frames; reassembles fragmented messages."""

    __slots__ = ("_buf", "_frag", "_frag_op")

    def __init__(self) -> None:
        self._buf = b""
        self._frag: list[bytes] = []
        self._frag_op = 0

    def feed(self, data: bytes) -> list[tuple[int, bytes]]:
        """Consume bytes; return the complete (opcode, payload) messages they finish."""
        buf = self._buf + data if self._buf else data
        out: list[tuple[int, bytes]] = []
        pos = 0
        end = len(buf)
        while end - pos >= 2:
            b0 = buf[pos]
            n = buf[pos + 1] & 0x7F
            head = 2
            if n == 126:
                if end - pos < 4:
                    break
                n = (buf[pos + 2] << 8) | buf[pos + 3]
                head = 4
            elif n == 127:
                if end - pos < 10:
                    break
                (n,) = struct.unpack_from("!Q", buf, pos + 2)
                head = 10
            if end - pos < head + n:
                break
            payload = buf[pos + head : pos + head + n]
            pos += head + n
            opcode = b0 & 0x0F
            if b0 & 0x80:
                if opcode == OP_CONT:
                    self._frag.append(payload)
                    out.append((self._frag_op, b"".join(self._frag)))
                    self._frag = []
                else:
                    out.append((opcode, payload))
            elif opcode == OP_CONT:
                self._frag.append(payload)
            else:
                self._frag_op = opcode
                self._frag = [payload]
        self._buf = buf[pos:] if pos < end else b""
        return out


# A number after a key: separators skipped, the number matched in C (a load client reads three
# per delivery; a byte-by-byte Python loop was a good part of its CPU).
_NUMBER = re.compile(rb"[ :]*([0-9.+\-eE]+)")


def _number_after(payload: bytes, key: bytes) -> bytes | None:
    i = payload.find(key)
    if i < 0:
        return None
    found = _NUMBER.match(payload, i + len(key))
    return found.group(1) if found is not None else None


def int_field(payload: bytes, key: bytes) -> int | None:
    """The integer after the first occurrence of ``key`` (e.g. ``b'"gameVersion"'``)."""
    raw = _number_after(payload, key)
    try:
        return int(raw) if raw is not None else None
    except ValueError:
        return None


def float_field(payload: bytes, key: bytes) -> float | None:
    """The number after the first occurrence of ``key`` (e.g. ``b'"t"'``)."""
    raw = _number_after(payload, key)
    try:
        return float(raw) if raw is not None else None
    except ValueError:
        return None
