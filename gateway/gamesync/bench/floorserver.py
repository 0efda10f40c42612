"""The bare-subscriber floor: what any server must do per publish, and nothing else.

Run as ``python -m gamesync.bench.floorserver PORT SIZE [REDIS_PORT]``. On uvloop, with no
framework: raw ``asyncio.Protocol`` websockets (just enough RFC 6455 for the bench's load client:
the upgrade of ``/ws/games/{id}``, ``subscribed`` once the game's subscription exists, close
frames answered, everything else read and dropped) and, with ``REDIS_PORT``, one pub/sub
connection read by a ``hiredis.Reader`` in its ``data_received``: every complete message of a
socket read is routed at once. Per message it finds ``version`` and the ``snapshot`` value in
the envelope by searching the bytes (the bench publisher writes ``snapshot`` last), builds the
``snapshot`` frame once and writes it to each of the game's sockets with ``transport.write``.
No validation, no authentication, no conflation, no metrics: the ceiling a gateway's read path
and fan-out are measured against (``throughput``, ``fanout``).

Driven by stdin lines like :mod:`gamesync.bench.rawserver`: ``fanout ROUNDS`` writes ROUNDS
frames per game back to back (no Redis) and answers a JSON line with the last versions.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import json
import resource
import sys
import time
from typing import Any, cast

import hiredis

from gamesync.bench.payload import SnapshotFactory
from gamesync.framing import text_frame

__all__ = ["main"]

_GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"  # RFC 6455 §1.3
_VERSION = b'"version":'
_SNAPSHOT = b'"snapshot":'
_CHANNEL = b"game:{"


class Floor:
    """Each game's local sockets, the Redis subscription, and the frame of each message."""

    def __init__(self, size: int) -> None:
        self.factory = SnapshotFactory(size)
        self.games: dict[int, set[Socket]] = {}
        self.channels: dict[bytes, set[Socket]] = {}
        self.confirmed: set[int] = set()
        self.waiting: dict[int, list[Socket]] = {}
        self.versions: dict[int, int] = {}
        self.redis: RedisSubscriber | None = None

    def join(self, game: int, sock: Socket) -> None:
        members = self.games.get(game)
        if members is None:
            members = self.games[game] = set()
            self.channels[b"game:{%d}" % game] = members
            if self.redis is not None:
                self.redis.subscribe(game)
        members.add(sock)
        if self.redis is None or game in self.confirmed:
            sock.subscribed(game)
        else:
            self.waiting.setdefault(game, []).append(sock)

    def leave(self, game: int, sock: Socket) -> None:
        members = self.games.get(game)
        if members is not None:
            members.discard(sock)

    def confirm(self, channel: bytes) -> None:
        if not channel.startswith(_CHANNEL):
            return
        game = int(channel[len(_CHANNEL) : -1])
        self.confirmed.add(game)
        for sock in self.waiting.pop(game, []):
            sock.subscribed(game)

    def message(self, channel: bytes, envelope: bytes) -> None:
        members = self.channels.get(channel)
        if not members:
            return
        i = envelope.find(_VERSION) + len(_VERSION)
        j = i
        while envelope[j] in b"0123456789":
            j += 1
        s = envelope.find(_SNAPSHOT) + len(_SNAPSHOT)
        frame = text_frame(
            b'{"type":"snapshot","version":1,"gameId":%s,"gameVersion":%s,"data":%s}'
            % (channel[len(_CHANNEL) : -1], envelope[i:j], envelope[s:-1])
        )
        for sock in members:
            sock.transport.write(frame)

    async def fanout(self, rounds: int) -> dict[str, object]:
        started = time.monotonic()
        for _ in range(rounds):
            for game, members in self.games.items():
                version = self.versions.get(game, 0) + 1
                self.versions[game] = version
                data = self.factory.data(time.monotonic(), version).encode()
                frame = text_frame(
                    b'{"type":"snapshot","version":1,"gameId":%d,"gameVersion":%d,"data":%s}'
                    % (game, version, data)
                )
                for sock in members:
                    sock.transport.write(frame)
            await asyncio.sleep(0)
        return {"loop_secs": time.monotonic() - started, "last": dict(self.versions)}


class Socket(asyncio.Protocol):
    """One websocket: the upgrade, then client frames read and dropped (close answered)."""

    def __init__(self, floor: Floor) -> None:
        self.floor = floor
        self.transport = cast(asyncio.Transport, None)
        self.head = b""
        self.buf = b""
        self.game: int | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)

    def data_received(self, data: bytes) -> None:
        if self.game is None:
            self._upgrade(data)
            return
        self.buf += data
        while len(self.buf) >= 2:
            opcode, n = self.buf[0] & 0x0F, self.buf[1] & 0x7F
            head = 2 + (2 if n == 126 else 8 if n == 127 else 0) + 4  # + the masking key
            if n >= 126:
                if len(self.buf) < head:
                    return
                n = int.from_bytes(self.buf[2 : head - 4], "big")
            if len(self.buf) < head + n:
                return
            self.buf = self.buf[head + n :]
            if opcode == 0x8:  # close: answer with a bare close frame, then hang up
                self.transport.write(b"\x88\x00")
                self.transport.close()
                return

    def _upgrade(self, data: bytes) -> None:
        self.head += data
        end = self.head.find(b"\r\n\r\n")
        if end < 0:
            return
        lines = self.head[:end].split(b"\r\n")
        path = lines[0].split(b" ")[1]
        key = b""
        for line in lines[1:]:
            name, _, value = line.partition(b":")
            if name.strip().lower() == b"sec-websocket-key":
                key = value.strip()
        try:
            game = int(path.rstrip(b"/").rsplit(b"/", 1)[-1])
        except ValueError:
            self.transport.write(b"HTTP/1.1 404 Not Found\r\ncontent-length: 0\r\n\r\n")
            self.transport.close()
            return
        accept = base64.b64encode(hashlib.sha1(key + _GUID).digest())  # noqa: S324 - RFC 6455
        self.transport.write(
            b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
            b"Connection: Upgrade\r\nSec-WebSocket-Accept: " + accept + b"\r\n\r\n"
        )
        self.game = game
        self.head = b""
        self.floor.join(game, self)

    def subscribed(self, game: int) -> None:
        self.transport.write(text_frame(b'{"type":"subscribed","version":1,"gameId":%d}' % game))

    def connection_lost(self, exc: Exception | None) -> None:
        if self.game is not None:
            self.floor.leave(self.game, self)


class RedisSubscriber(asyncio.Protocol):
    """The pub/sub connection: every complete reply of a socket read handled in one go."""

    def __init__(self, floor: Floor) -> None:
        self.floor = floor
        self.reader = hiredis.Reader()
        self.transport = cast(asyncio.Transport, None)
        self.lost: asyncio.Future[None] = asyncio.get_running_loop().create_future()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)

    def subscribe(self, game: int) -> None:
        channel = b"game:{%d}" % game
        self.transport.write(b"*2\r\n$9\r\nSUBSCRIBE\r\n$%d\r\n%s\r\n" % (len(channel), channel))

    def data_received(self, data: bytes) -> None:
        reader, floor = self.reader, self.floor
        reader.feed(data)
        while (reply := reader.gets()) is not False:
            kind = reply[0]
            if kind == b"message":
                floor.message(reply[1], reply[2])
            elif kind == b"subscribe":
                floor.confirm(reply[1])

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.lost.done():
            self.lost.set_result(None)


async def _serve(port: int, size: int, redis_port: int | None) -> None:
    loop = asyncio.get_running_loop()
    floor = Floor(size)
    if redis_port is not None:
        _, redis = await loop.create_connection(
            lambda: RedisSubscriber(floor), "127.0.0.1", redis_port
        )
        floor.redis = redis
    server = await loop.create_server(lambda: Socket(floor), "127.0.0.1", port, backlog=4096)
    reader = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    print(f"GAMESYNC_READY public=http://127.0.0.1:{port}", flush=True)
    try:
        while True:
            line = (await reader.readline()).decode().split()
            if not line or line[0] == "quit":
                break
            if line[0] == "fanout":
                result: dict[str, Any] = await floor.fanout(int(line[1]))
                print(json.dumps(result), flush=True)
    finally:
        server.close()


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    with contextlib.suppress(ValueError, OSError):
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    import uvloop

    redis_port = int(args[2]) if len(args) > 2 else None
    uvloop.run(_serve(int(args[0]), int(args[1]) if len(args) > 1 else 2048, redis_port))
    return 0


if __name__ == "__main__":
    sys.exit(main())
