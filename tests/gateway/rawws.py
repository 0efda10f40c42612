"""A bare websocket client on a raw socket: it reads only when told to, never answers pings.

The `websockets` library answers pings and reads continuously, so it cannot play a client whose
network died or that stopped reading. This one does the RFC 6455 handshake and parses frames
with the bench's client framing (`gamesync.bench.wire`, standard library only).
"""

from __future__ import annotations

import asyncio
import os
import socket
from collections import deque
from dataclasses import dataclass

from gamesync.bench import wire


@dataclass
class Frame:
    opcode: int
    payload: bytes

    @property
    def close_code(self) -> int | None:
        return wire.close_code(self.payload) if self.opcode == wire.OP_CLOSE else None


class Refused(ConnectionError):
    """The server answered the upgrade with something else than 101 (`head`, maybe empty)."""

    def __init__(self, head: bytes) -> None:
        super().__init__(head.decode(errors="replace"))
        self.head = head

    @property
    def status(self) -> int | None:
        """The response's status code, if a status line came."""
        parts = self.head.split(b" ", 2)
        return int(parts[1]) if len(parts) > 1 and parts[1].isdigit() else None

    def header(self, name: str) -> str | None:
        """A response header's value, if present."""
        for line in self.head.split(b"\r\n")[1:]:
            key, _, value = line.partition(b":")
            if key.strip().lower() == name.lower().encode():
                return value.strip().decode()
        return None


async def open_socket(
    host: str,
    port: int,
    *,
    rcvbuf: int | None = None,
    sndbuf: int | None = None,
    source: str | None = None,
    limit: int = 1 << 20,
) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    """A TCP connection from `source` (a loopback address), its buffers set before connecting."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        if rcvbuf is not None:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
        if sndbuf is not None:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, sndbuf)
        if source is not None:
            sock.bind((source, 0))
        sock.setblocking(False)
        await asyncio.get_running_loop().sock_connect(sock, (host, port))
    except OSError:
        sock.close()
        raise
    return await asyncio.open_connection(sock=sock, limit=limit)


class RawClient:
    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer
        self.parser = wire.FrameParser()
        self.frames: deque[Frame] = deque()

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
        source: str | None = None,
        sndbuf: int | None = None,
    ) -> RawClient:
        """Upgrade to a websocket; the client buffers at most about 2 x `limit` bytes unread.

        `source`: the loopback address to connect from; `rcvbuf`, `sndbuf`: the socket's
        buffers (set before connecting). A refused upgrade raises `Refused`.
        """
        reader, writer = await open_socket(
            host, port, rcvbuf=rcvbuf, sndbuf=sndbuf, source=source, limit=limit
        )
        sent = {"Authorization": f"Bearer {token}"} if token else {}
        writer.write(wire.handshake_request(host, port, path, {**sent, **(headers or {})}))
        await writer.drain()
        try:
            head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
        except asyncio.IncompleteReadError as exc:
            writer.transport.abort()
            raise Refused(exc.partial) from exc
        if not wire.upgrade_accepted(head.split(b"\r\n", 1)[0]):
            writer.transport.abort()
            raise Refused(head)
        return cls(reader, writer)

    async def read_frame(self, timeout: float = 5.0) -> Frame:
        """The next frame (a fragmented message comes whole), reading only as much as needed."""
        async with asyncio.timeout(timeout):
            while not self.frames:
                data = await self.reader.read(1 << 16)
                if not data:
                    raise asyncio.IncompleteReadError(b"", None)
                self.frames.extend(Frame(op, body) for op, body in self.parser.feed(data))
        return self.frames.popleft()

    async def read_until_close(self, timeout: float = 5.0) -> Frame:
        """Read frames (ignoring pings, never answering) until a close frame."""
        async with asyncio.timeout(timeout):
            while True:
                frame = await self.read_frame(timeout)
                if frame.opcode == wire.OP_CLOSE:
                    return frame

    def send_text(self, text: str) -> None:
        self.send_frame(wire.OP_TEXT, text.encode())

    def send_ping(self, payload: bytes = b"") -> None:
        """A ping control frame (payload at most 125 bytes); the server owes a pong."""
        self.send_frame(wire.OP_PING, payload)

    def send_close(self, code: int = 1000) -> None:
        self.send_frame(wire.OP_CLOSE, code.to_bytes(2, "big"))

    def send_frame(self, opcode: int, payload: bytes) -> None:
        """One final, masked client frame."""
        self.writer.write(wire.client_frame(opcode, payload, mask=os.urandom(4)))

    def close(self) -> None:
        self.writer.transport.abort()

    async def __aenter__(self) -> RawClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        self.close()
