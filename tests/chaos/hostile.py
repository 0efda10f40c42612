"""Hostile clients: each kind a bounded loop of raw-socket abuse against one gateway.

Every attack runs until its deadline (and within a byte or attempt budget), reconnecting when
the gateway throws it out, and counts what happened to it: sockets opened, bytes pushed, close
codes and HTTP statuses received. None of them answers pings; most never read at all.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import random
import socket
from collections import Counter
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field

from chaos.rfc6455 import (
    OP_CONT,
    OP_PING,
    OP_TEXT,
    ServerFrames,
    WireViolation,
    client_frame,
    handshake_request,
    parse_http_head,
)

__all__ = ["ATTACKS", "Attack", "Tally", "Target"]

#: most bytes one socket pushes per connection (a flood is bounded too)
BYTES_PER_SOCKET = 16 << 20
#: one write of a flood: 100 ping frames of 125 bytes, ~13 KiB
_PING_BURST = client_frame(OP_PING, b"p" * 125) * 100


@dataclass
class Tally:
    """What one attack kind did, and what the gateway answered."""

    sockets: int = 0
    bytes_sent: int = 0
    closes: Counter[int] = field(default_factory=Counter)
    statuses: Counter[int] = field(default_factory=Counter)
    #: sockets the gateway ended (EOF or reset) while the attacker held them
    dropped: int = 0
    violations: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class Target:
    host: str
    port: int
    sources: Sequence[str]
    token: Callable[[str], str]  # user -> a valid token
    hot_game: int  # a game with big, frequent snapshots
    hot_users: Sequence[str]  # members of the hot game


@dataclass(frozen=True)
class Attack:
    name: str
    run: Callable[[Target, int, float, Tally], Awaitable[None]]  # (target, sockets, until, tally)


async def _open(
    target: Target, index: int, *, rcvbuf: int | None = None
) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    if rcvbuf is not None:  # before connect, so the window is small from the start
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
    sock.bind((target.sources[index % len(target.sources)], 0))
    sock.setblocking(False)
    try:
        await asyncio.get_running_loop().sock_connect(sock, (target.host, target.port))
    except OSError:
        sock.close()
        raise
    return await asyncio.open_connection(sock=sock, limit=1 << 16)


async def _upgrade(
    target: Target,
    index: int,
    tally: Tally,
    *,
    path: str = "/ws",
    token: str | None = None,
    rcvbuf: int | None = None,
) -> tuple[asyncio.StreamReader, asyncio.StreamWriter] | None:
    """Connect and handshake; None (tallied) when the gateway refuses or is gone."""
    try:
        reader, writer = await _open(target, index, rcvbuf=rcvbuf)
    except OSError:
        tally.statuses[0] += 1
        return None
    tally.sockets += 1
    headers = {"Authorization": f"Bearer {token}"} if token is not None else {}
    writer.write(handshake_request(target.host, target.port, path, headers))
    try:
        async with asyncio.timeout(10):
            head = await reader.readuntil(b"\r\n\r\n")
        parsed = parse_http_head(head)
    except (OSError, asyncio.IncompleteReadError, asyncio.LimitOverrunError, TimeoutError) as exc:
        tally.statuses[-1] += 1  # no answer to a handshake: a timeout or a drop
        tally.violations.append(f"handshake not answered: {type(exc).__name__}")
        writer.transport.abort()
        return None
    except WireViolation as exc:
        tally.violations.append(str(exc))
        writer.transport.abort()
        return None
    assert parsed is not None
    tally.statuses[parsed[0].status] += 1
    if parsed[0].status != 101:
        writer.transport.abort()
        return None
    return reader, writer


async def _read_to_close(reader: asyncio.StreamReader, tally: Tally, timeout: float) -> None:
    """Read (never answering) until the close frame or EOF; tally the close code."""
    frames = ServerFrames()
    try:
        async with asyncio.timeout(timeout):
            while data := await reader.read(65536):
                for frame in frames.feed(data):
                    if frame.close_code is not None:
                        tally.closes[frame.close_code] += 1
                        return
        tally.dropped += 1
    except WireViolation as exc:
        tally.violations.append(str(exc))
    except (OSError, TimeoutError):
        tally.dropped += 1


async def _each(sockets: int, until: float, one: Callable[[int], Awaitable[None]]) -> None:
    """Run `one(i)` for `sockets` workers, each again and again until the deadline."""
    loop = asyncio.get_running_loop()

    async def worker(i: int) -> None:
        for _ in range(10_000):  # bounded in count as well as in time
            if loop.time() >= until:
                return
            started = loop.time()
            with contextlib.suppress(OSError, asyncio.IncompleteReadError):
                await one(i)
            if loop.time() - started < 0.05:
                await asyncio.sleep(0.05)  # thrown out at once: pace the retries a little

    async with asyncio.timeout(max(0.0, until - loop.time()) + 15):
        await asyncio.gather(*(worker(i) for i in range(sockets)))


async def _flood(writer: asyncio.StreamWriter, until: float, tally: Tally) -> None:
    """Write ping bursts, never reading, until the deadline or the byte budget."""
    loop = asyncio.get_running_loop()
    sent = 0
    try:
        while sent < BYTES_PER_SOCKET and loop.time() < until:
            writer.write(_PING_BURST)
            sent += len(_PING_BURST)
            tally.bytes_sent += len(_PING_BURST)
            # Blocks while the gateway stops reading (backpressure): bounded by the deadline.
            async with asyncio.timeout(max(0.01, until - loop.time())):
                await writer.drain()
    except (OSError, TimeoutError):
        pass


async def ping_flood_unauthenticated(target: Target, sockets: int, until: float, t: Tally) -> None:
    async def one(i: int) -> None:
        upgraded = await _upgrade(target, i, t)
        if upgraded is not None:
            await _flood(upgraded[1], until, t)
            await _hold(upgraded, until, t)

    await _each(sockets, until, one)


async def ping_flood_authenticated(target: Target, sockets: int, until: float, t: Tally) -> None:
    async def one(i: int) -> None:
        upgraded = await _upgrade(target, i, t, token=target.token(f"flood{i}"))
        if upgraded is not None:
            await _flood(upgraded[1], until, t)
            await _hold(upgraded, until, t)

    await _each(sockets, until, one)


async def _hold(
    conn: tuple[asyncio.StreamReader, asyncio.StreamWriter], until: float, t: Tally
) -> None:
    """Keep a socket open without reading until the deadline."""
    _, writer = conn
    await asyncio.sleep(max(0.0, until - asyncio.get_running_loop().time()))  # the attack
    writer.transport.abort()


async def oversized_frames(target: Target, sockets: int, until: float, t: Tally) -> None:
    async def one(i: int) -> None:
        upgraded = await _upgrade(target, i, t, token=target.token(f"big{i}"))
        if upgraded is None:
            return
        reader, writer = upgraded
        if i % 2:
            payload = b"x" * 65536
            writer.write(client_frame(OP_TEXT, payload))
            t.bytes_sent += len(payload)
        else:  # a header promising 2^62 bytes
            writer.write(bytes([0x81, 0xFF]) + (1 << 62).to_bytes(8, "big") + b"\0\0\0\0")
        await _read_to_close(reader, t, 10)
        writer.transport.abort()

    await _each(sockets, until, one)


async def endless_fragments(target: Target, sockets: int, until: float, t: Tally) -> None:
    async def one(i: int) -> None:
        upgraded = await _upgrade(target, i, t, token=target.token(f"frag{i}"))
        if upgraded is None:
            return
        reader, writer = upgraded
        closing = asyncio.ensure_future(_read_to_close(reader, t, 30))
        loop = asyncio.get_running_loop()
        writer.write(client_frame(OP_TEXT, b"{", fin=False))
        chunk = client_frame(OP_CONT, b" ", fin=False) * 4096
        with contextlib.suppress(OSError, TimeoutError):
            while not closing.done() and loop.time() < until:
                writer.write(chunk)
                t.bytes_sent += len(chunk)
                async with asyncio.timeout(max(0.01, until - loop.time())):
                    await writer.drain()
        writer.transport.abort()
        await asyncio.gather(closing, return_exceptions=True)

    await _each(sockets, until, one)


async def slowloris_handshakes(target: Target, sockets: int, until: float, t: Tally) -> None:
    async def one(i: int) -> None:
        reader, writer = await _open(target, i)
        t.sockets += 1
        loop = asyncio.get_running_loop()
        writer.write(f"GET /ws HTTP/1.1\r\nHost: {target.host}\r\n".encode())
        n = 0
        while loop.time() < until and n < 1000:
            writer.write(f"X-Slow-{n}: {'a' * 8}\r\n".encode())  # never the blank line
            n += 1
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(0.5):  # one header line every half second
                    if not await reader.read(4096):
                        t.dropped += 1
                        return
        writer.transport.abort()

    await _each(sockets, until, one)


async def never_reading(target: Target, sockets: int, until: float, t: Tally) -> None:
    async def one(i: int) -> None:
        user = target.hot_users[i % len(target.hot_users)]
        path = f"/ws/games/{target.hot_game}"
        upgraded = await _upgrade(target, i, t, path=path, token=target.token(user), rcvbuf=4096)
        if upgraded is not None:
            await _hold(upgraded, until, t)

    await _each(sockets, until, one)


async def subscribe_flood(target: Target, sockets: int, until: float, t: Tally) -> None:
    async def one(i: int) -> None:
        upgraded = await _upgrade(target, i, t, token=target.token(f"probe{i}"))
        if upgraded is None:
            return
        reader, writer = upgraded
        closing = asyncio.ensure_future(_read_to_close(reader, t, 30))
        loop = asyncio.get_running_loop()
        with contextlib.suppress(OSError, TimeoutError):
            while not closing.done() and loop.time() < until:
                burst = b"".join(
                    client_frame(
                        OP_TEXT, b'{"type":"subscribe","gameId":%d}' % random.randrange(1 << 53)
                    )
                    for _ in range(50)
                )
                writer.write(burst)
                t.bytes_sent += len(burst)
                async with asyncio.timeout(max(0.01, until - loop.time())):
                    await writer.drain()
                await asyncio.sleep(0.01)  # pacing the flood, not synchronising
        writer.transport.abort()
        await asyncio.gather(closing, return_exceptions=True)

    await _each(sockets, until, one)


async def garbage_tokens(target: Target, sockets: int, until: float, t: Tally) -> None:
    async def one(i: int) -> None:
        garbage = os.urandom(random.choice((8, 64, 600, 3000))).hex()
        if i % 3 == 0:
            garbage = "eyJhbGciOiJub25lIn0." + garbage + "."
        upgraded = await _upgrade(target, i, t, token=garbage)
        if upgraded is not None:
            await _read_to_close(upgraded[0], t, 10)
            upgraded[1].transport.abort()

    await _each(sockets, until, one)


ATTACKS = (
    Attack("ping_flood_unauthenticated", ping_flood_unauthenticated),
    Attack("ping_flood_authenticated", ping_flood_authenticated),
    Attack("oversized_frames", oversized_frames),
    Attack("endless_fragments", endless_fragments),
    Attack("slowloris_handshakes", slowloris_handshakes),
    Attack("never_reading", never_reading),
    Attack("subscribe_flood", subscribe_flood),
    Attack("garbage_tokens", garbage_tokens),
)
