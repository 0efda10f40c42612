"""A minimal RESP2 client for the bench publisher and Redis checks.

The bench talks to Redis over raw RESP instead of redis-py: only the broker and the publisher
helper may import ``redis`` (import-linter), and a pipelined raw client keeps the publisher's
own CPU small next to the servers it measures.
"""

from __future__ import annotations

import asyncio
import contextlib

__all__ = ["RespClient", "RespError", "encode_command"]


class RespError(RuntimeError):
    """Redis answered an error reply."""


def encode_command(*args: bytes | str | int) -> bytes:
    parts = [b"*%d\r\n" % len(args)]
    for arg in args:
        raw = arg if isinstance(arg, bytes) else str(arg).encode()
        parts.append(b"$%d\r\n%s\r\n" % (len(raw), raw))
    return b"".join(parts)


class RespClient:
    """One connection; ``command`` for request/response, ``write``+``read_reply`` to pipeline."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer

    @classmethod
    async def connect(cls, host: str, port: int, timeout: float = 5.0) -> RespClient:
        reader, writer = await asyncio.wait_for(asyncio.open_connection(host, port), timeout)
        return cls(reader, writer)

    def write(self, *args: bytes | str | int) -> None:
        self.writer.write(encode_command(*args))

    async def read_reply(self) -> object:
        line = await self.reader.readline()
        if not line:
            raise ConnectionError("redis closed the connection")
        kind, body = line[:1], line[1:-2]
        if kind == b"+":
            return body.decode()
        if kind == b"-":
            raise RespError(body.decode())
        if kind == b":":
            return int(body)
        if kind == b"$":
            n = int(body)
            if n < 0:
                return None
            data = await self.reader.readexactly(n + 2)
            return data[:-2]
        if kind == b"*":
            n = int(body)
            return None if n < 0 else [await self.read_reply() for _ in range(n)]
        raise RespError(f"unexpected reply {line[:40]!r}")

    async def command(self, *args: bytes | str | int) -> object:
        self.write(*args)
        await self.writer.drain()
        return await self.read_reply()

    async def close(self) -> None:
        self.writer.close()
        with contextlib.suppress(OSError):
            await self.writer.wait_closed()
