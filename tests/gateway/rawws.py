"""A bare websocket client on a raw socket: it reads only when told to, never answers pings.

The `websockets` library answers pings and reads continuously, so it cannot play a client whose
network died or that stopped reading. This one does the RFC 6455 handshake and parses frames.
"""

from __future__ import annotations

import asyncio
import base64
import os
import struct
from dataclasses import dataclass


@dataclass
class Frame:
    opcode: int
    payload: bytes

    @property
    def close_code(self) -> int | None:
        if self.opcode != 0x8 or len(self.payload) < 2:
            return None
        return int(struct.unpack("!H", self.payload[:2])[0])


class RawClient:
    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer

    @classmethod
    async def connect(
        cls,
        host: str,
        port: int,
        path: str,
        token: str | None,
        *,
        rcvbuf: int | None = None,
        limit: int = 1 << 20,
        headers: dict[str, str] | None = None,
    ) -> RawClient:
        """Upgrade to a websocket; the client buffers at most about 2 x `limit` bytes unread."""
        sock = None
        if rcvbuf is not None:
            import socket

            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
            sock.setblocking(False)
            await asyncio.get_running_loop().sock_connect(sock, (host, port))
            reader, writer = await asyncio.open_connection(sock=sock, limit=limit)
        else:
            reader, writer = await asyncio.open_connection(host, port, limit=limit)
        key = base64.b64encode(os.urandom(16)).decode()
        auth = f"Authorization: Bearer {token}\r\n" if token else ""
        auth += "".join(f"{name}: {value}\r\n" for name, value in (headers or {}).items())
        writer.write(
            (
                f"GET {path} HTTP/1.1\r\nHost: {host}:{port}\r\nUpgrade: websocket\r\n"
                f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n"
                f"Sec-WebSocket-Version: 13\r\n{auth}\r\n"
            ).encode()
        )
        await writer.drain()
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
        if b" 101 " not in head.split(b"\r\n", 1)[0]:
            raise ConnectionError(head.decode(errors="replace"))
        return cls(reader, writer)

    async def read_frame(self, timeout: float = 5.0) -> Frame:
        async with asyncio.timeout(timeout):
            b0, b1 = await self.reader.readexactly(2)
            size = b1 & 0x7F
            if size == 126:
                (size,) = struct.unpack("!H", await self.reader.readexactly(2))
            elif size == 127:
                (size,) = struct.unpack("!Q", await self.reader.readexactly(8))
            payload = await self.reader.readexactly(size)
        return Frame(b0 & 0x0F, payload)

    async def read_until_close(self, timeout: float = 5.0) -> Frame:
        """Read frames (ignoring pings, never answering) until a close frame."""
        async with asyncio.timeout(timeout):
            while True:
                frame = await self.read_frame(timeout)
                if frame.opcode == 0x8:
                    return frame

    def send_text(self, text: str) -> None:
        self.send_frame(0x1, text.encode())

    def send_ping(self, payload: bytes = b"") -> None:
        """A ping control frame (payload at most 125 bytes); the server owes a pong."""
        self.send_frame(0x9, payload)

    def send_close(self, code: int = 1000) -> None:
        self.send_frame(0x8, struct.pack("!H", code))

    def send_frame(self, opcode: int, payload: bytes, *, fin: bool = True) -> None:
        """One masked client frame, as RFC 6455 §5.2 lays it out."""
        mask = os.urandom(4)
        masked = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
        size = len(payload)
        first = (0x80 if fin else 0) | opcode
        if size < 126:
            header = struct.pack("!BB", first, 0x80 | size)
        elif size < 1 << 16:
            header = struct.pack("!BBH", first, 0x80 | 126, size)
        else:
            header = struct.pack("!BBQ", first, 0x80 | 127, size)
        self.writer.write(header + mask + masked)

    def close(self) -> None:
        self.writer.transport.abort()
