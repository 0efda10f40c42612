"""How messages are framed on each transport: websocket text frames and SSE events. Pure.

A message is encoded once (gamesync.protocol) and framed once per transport; the framed bytes
are what a socket writes, as they are, to every recipient on that transport.
"""

from __future__ import annotations

import struct
from enum import Enum

__all__ = ["Framing", "frame", "sse_comment", "sse_end", "text_frame"]


class Framing(Enum):
    """How messages are framed on a transport; its value is the `transport` metric label."""

    WEBSOCKET = "websocket"  # one unmasked text frame per message (RFC 6455)
    SSE = "sse"  # one `data:` event per message, in an HTTP/1.1 chunk (WHATWG HTML §9.2)


def frame(framing: Framing, payload: bytes) -> bytes:
    """`payload` (one encoded message) framed for `framing`'s transport, ready to write."""
    if framing is Framing.WEBSOCKET:
        return text_frame(payload)
    if b"\n" in payload or b"\r" in payload:
        # A published snapshot keeps its bytes, line breaks included (whitespace between JSON
        # tokens, never inside a string). A line break would end the `data:` line, so each line
        # gets its own `data:` field; the client joins them with "\n" (WHATWG HTML §9.2.6).
        lines = payload.replace(b"\r\n", b"\n").replace(b"\r", b"\n")
        payload = lines.replace(b"\n", b"\ndata: ")
    return _chunk(b"data: " + payload + b"\n\n")


def sse_comment(text: bytes = b"") -> bytes:
    """An SSE comment line (a heartbeat the client's parser ignores), as one HTTP chunk."""
    return _chunk(b":" + text + b"\n\n")


def sse_end() -> bytes:
    """The last chunk of a chunked HTTP/1.1 response (RFC 9112 §7.1): the stream's end."""
    return b"0\r\n\r\n"


def _chunk(data: bytes) -> bytes:
    # RFC 9112 §7.1: size in hex, CRLF, data, CRLF.
    return b"%x\r\n%s\r\n" % (len(data), data)


def text_frame(payload: bytes) -> bytes:
    """Frame `payload` as one unmasked, final text frame (RFC 6455 §5.2; servers never mask)."""
    size = len(payload)
    if size < 126:
        header = struct.pack("!BB", 0x81, size)
    elif size < 1 << 16:
        header = struct.pack("!BBH", 0x81, 126, size)
    else:
        header = struct.pack("!BBQ", 0x81, 127, size)
    return header + payload
