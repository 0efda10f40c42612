"""The client side of RFC 6455, just enough for the chaos and fuzz suites. Pure, no I/O.

The suites drive thousands of raw sockets (clients that stop reading, flood pings, or send
frames no library would build), so they frame bytes themselves. Server frames are checked
strictly: a frame the RFC forbids a server to send is a `WireViolation`, not something to skip.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

# The client side's bytes are the project's one copy of client framing; this module adds the
# strict reading of what a server sends.
from gamesync.bench.wire import (
    OP_BINARY,
    OP_CLOSE,
    OP_CONT,
    OP_PING,
    OP_PONG,
    OP_TEXT,
    client_frame,
    close_code,
    handshake_request,
)

__all__ = [
    "OP_BINARY",
    "OP_CLOSE",
    "OP_CONT",
    "OP_PING",
    "OP_PONG",
    "OP_TEXT",
    "Frame",
    "HttpHead",
    "ServerFrames",
    "WireViolation",
    "client_frame",
    "close_payload",
    "handshake_request",
    "parse_http_head",
]

_CONTROL = frozenset({OP_CLOSE, OP_PING, OP_PONG})
_DATA = frozenset({OP_TEXT, OP_BINARY})

#: Longest HTTP response head a gateway may send before the suites call it a violation.
MAX_HEAD_BYTES = 16 * 1024


class WireViolation(Exception):
    """The server sent bytes RFC 6455 (or HTTP/1.1) does not allow."""


@dataclass(frozen=True, slots=True)
class Frame:
    """A complete server message (fragments joined) or control frame."""

    opcode: int
    payload: bytes

    @property
    def close_code(self) -> int | None:
        """The close code of a close frame (1005 when it carries none)."""
        return close_code(self.payload) if self.opcode == OP_CLOSE else None


def close_payload(code: int, reason: bytes = b"") -> bytes:
    return struct.pack("!H", code) + reason


@dataclass(frozen=True, slots=True)
class HttpHead:
    status: int
    headers: dict[str, str]


def parse_http_head(data: bytes) -> tuple[HttpHead, bytes] | None:
    """(head, bytes after it) once `data` holds a whole response head, else None."""
    end = data.find(b"\r\n\r\n")
    if end < 0:
        if len(data) > MAX_HEAD_BYTES:
            raise WireViolation(f"response head longer than {MAX_HEAD_BYTES} bytes")
        return None
    lines = data[:end].decode("latin-1").split("\r\n")
    parts = lines[0].split(" ", 2)
    if len(parts) < 2 or not parts[0].startswith("HTTP/1.") or not parts[1].isdigit():
        raise WireViolation(f"not an HTTP status line: {lines[0][:80]!r}")
    headers: dict[str, str] = {}
    for line in lines[1:]:
        name, sep, value = line.partition(":")
        if not sep:
            raise WireViolation(f"malformed header line {line[:80]!r}")
        headers[name.strip().lower()] = value.strip()
    return HttpHead(int(parts[1]), headers), data[end + 4 :]


class ServerFrames:
    """Incremental, strict parser of server frames (§5.2-5.5): unmasked, no RSV bits, known
    opcodes, control frames final and at most 125 bytes, continuations only after a start."""

    __slots__ = ("_buf", "_frag", "_frag_op", "max_payload")

    def __init__(self, max_payload: int = 1 << 24) -> None:
        self._buf = b""
        self._frag: list[bytes] = []
        self._frag_op: int | None = None
        self.max_payload = max_payload

    def feed(self, data: bytes) -> list[Frame]:
        """Consume bytes; return the messages and control frames they complete."""
        buf = self._buf + data if self._buf else data
        out: list[Frame] = []
        pos, end = 0, len(buf)
        while end - pos >= 2:
            b0, b1 = buf[pos], buf[pos + 1]
            n, head = b1 & 0x7F, 2
            if n == 126:
                if end - pos < 4:
                    break
                (n,) = struct.unpack_from("!H", buf, pos + 2)
                head = 4
            elif n == 127:
                if end - pos < 10:
                    break
                (n,) = struct.unpack_from("!Q", buf, pos + 2)
                head = 10
            self._check(b0, b1, n)
            if end - pos < head + n:
                break
            payload = buf[pos + head : pos + head + n]
            pos += head + n
            frame = self._assemble(b0 & 0x80 != 0, b0 & 0x0F, payload)
            if frame is not None:
                out.append(frame)
        self._buf = buf[pos:]
        return out

    def _check(self, b0: int, b1: int, n: int) -> None:
        opcode = b0 & 0x0F
        if b1 & 0x80:
            raise WireViolation("a server frame is masked")
        if b0 & 0x70:
            raise WireViolation("a server frame sets RSV bits without an extension")
        if opcode not in _CONTROL and opcode not in _DATA and opcode != OP_CONT:
            raise WireViolation(f"reserved opcode {opcode:#x}")
        if opcode in _CONTROL and (n > 125 or not b0 & 0x80):
            raise WireViolation("a control frame is fragmented or longer than 125 bytes")
        if n > self.max_payload:
            raise WireViolation(f"a server frame of {n} bytes")

    def _assemble(self, fin: bool, opcode: int, payload: bytes) -> Frame | None:
        if opcode in _CONTROL:
            return Frame(opcode, payload)
        if opcode == OP_CONT:
            if self._frag_op is None:
                raise WireViolation("a continuation frame with no message to continue")
            self._frag.append(payload)
            if not fin:
                return None
            frame = Frame(self._frag_op, b"".join(self._frag))
            self._frag, self._frag_op = [], None
            return frame
        if self._frag_op is not None:
            raise WireViolation("a new data frame inside a fragmented message")
        if fin:
            return Frame(opcode, payload)
        self._frag, self._frag_op = [payload], opcode
        return None
