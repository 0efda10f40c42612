"""Many well-behaved websocket clients in one process: raw `asyncio.Protocol` connections.

Each client watches one game through `/ws/games/{id}`, answers pings, and keeps a ledger: the
versions it received (in order, or not), publish→receive latency from the `t` the feed puts in
every snapshot, the server pings it saw (the sweeper's heartbeat), close codes, `reconnect`
hints, HTTP refusals and handshakes that were never answered. With a reconnect policy it does
what the shipped clients do: follow a `retryAfterMs` hint, else back off with full jitter, and
try the next target when its own is gone.
"""

from __future__ import annotations

import asyncio
import json
import math
import random
import time
from array import array
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, cast

from chaos.rfc6455 import (
    OP_CLOSE,
    OP_PING,
    OP_PONG,
    OP_TEXT,
    ServerFrames,
    WireViolation,
    client_frame,
    handshake_request,
    parse_http_head,
)

__all__ = ["Client", "Policy", "Swarm", "loopback_sources", "percentile"]

_VERSION = b'"gameVersion":'
_T = b'"t":'


def percentile(values: Sequence[float], q: float) -> float:
    """The q-th percentile (0-100) by nearest rank; NaN for no values."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    rank = min(len(ordered), max(1, math.ceil(q / 100 * len(ordered))))
    return ordered[rank - 1]


def loopback_sources(count: int, *, subnet: int = 1) -> list[str]:
    """`count` distinct source addresses in 127.<subnet>.0.0/16 (Linux routes all of 127/8
    to loopback): clients of many hosts, as a per-address cap sees them."""
    return [f"127.{subnet}.{1 + i // 250}.{1 + i % 250}" for i in range(count)]


def _number_after(payload: bytes, key: bytes) -> bytes:
    i = payload.find(key)
    if i < 0:
        return b""
    i += len(key)
    j = i
    while j < len(payload) and payload[j] in b"0123456789.-+eE":
        j += 1
    return payload[i:j]


@dataclass(frozen=True)
class Policy:
    """How clients behave after a close: reconnect or not, and how long a handshake may take."""

    reconnect: bool = False
    backoff_base: float = 0.1
    backoff_cap: float = 1.0
    handshake_timeout: float = 10.0
    #: try the next target after a close (a lost pod); False: stay on the one given
    move_on: bool = True


class Client(asyncio.Protocol):
    """One websocket client; its fields are the ledger the scenarios assert on."""

    def __init__(self, swarm: Swarm, index: int, game: int, token: str, target: int) -> None:
        self.swarm = swarm
        self.index = index
        self.game = game
        self.token = token
        self.target = target
        self.transport: asyncio.Transport | None = None
        self.upgraded = False
        self.head = b""
        self.parser = ServerFrames()
        self.attempts = 0
        self.attempted: list[float] = []  # loop time of each connection attempt
        self.connected = False
        #: loop time of the first `welcome`, and of the `subscribed` that followed it
        self.welcomed_at: float | None = None
        self.subscribed_at: float | None = None
        self.subscribed = False
        #: welcomed on this connection, `subscribed` not yet received
        self.joining = False
        #: connections that were welcomed and ended (or got an error) before `subscribed`
        self.failed_joins = 0
        self.first_snapshot = True
        self.last_version = 0
        self.subscription_last = 0
        self.received = 0
        self.out_of_order = 0
        self.closes: list[tuple[float, int]] = []
        self.hints: list[tuple[float, int]] = []  # (loop time, retryAfterMs) of `reconnect`
        self.pings: list[float] = []
        self.errors: Counter[str] = Counter()
        self.refusals: Counter[int] = Counter()
        self.timeouts = 0
        self.violations: list[str] = []
        self.stopped = False
        self._hint_ms: int | None = None
        self._failures = 0
        self._timer: asyncio.TimerHandle | None = None

    # connecting -------------------------------------------------------------------------

    async def connect(self) -> None:
        """One connection attempt to the current target (the ledger records how it ended)."""
        swarm = self.swarm
        host, port = swarm.targets[self.target]
        self.attempts += 1
        self.attempted.append(swarm.loop.time())
        self.upgraded, self.head, self.parser = False, b"", ServerFrames()
        try:
            async with asyncio.timeout(swarm.policy.handshake_timeout):
                await swarm.loop.create_connection(
                    lambda: self, host, port, local_addr=(swarm.source(self.index), 0)
                )
        except (OSError, TimeoutError):
            self._lost(refused=True)

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's is not a subclass
        self.connected = True
        host, port = self.swarm.targets[self.target]
        path = f"/ws/games/{self.game}"
        headers = {"Authorization": f"Bearer {self.token}"}
        self.transport.write(handshake_request(host, port, path, headers))
        self._timer = self.swarm.loop.call_later(
            self.swarm.policy.handshake_timeout, self._handshake_timed_out
        )

    def _handshake_timed_out(self) -> None:
        if not self.upgraded and self.transport is not None:
            self.timeouts += 1
            self.transport.abort()

    def connection_lost(self, exc: Exception | None) -> None:
        self.transport = None
        if self._timer is not None:
            self._timer.cancel()
        self._lost(refused=False)

    def _lost(self, *, refused: bool) -> None:
        self.connected = False
        self.subscribed = False
        if self.joining:
            self.joining = False
            self.failed_joins += 1
        swarm = self.swarm
        if self.stopped or not swarm.policy.reconnect:
            return
        if self._hint_ms is not None:
            delay = self._hint_ms / 1000
        else:
            cap = min(swarm.policy.backoff_cap, swarm.policy.backoff_base * 2**self._failures)
            delay = random.uniform(0, cap)
        if refused or self._hint_ms is None:
            self._failures += 1
            if swarm.policy.move_on:
                self.target = (self.target + 1) % len(swarm.targets)
        self._hint_ms = None
        swarm.reconnects += 1
        swarm.spawn(self._reconnect_after(delay))

    async def _reconnect_after(self, delay: float) -> None:
        await asyncio.sleep(delay)  # the backoff itself, not a synchronisation
        if not self.stopped:
            await self.connect()

    def stop(self) -> None:
        self.stopped = True
        if self.transport is not None:
            self.transport.abort()

    # receiving --------------------------------------------------------------------------

    def data_received(self, data: bytes) -> None:
        if not self.upgraded:
            try:
                parsed = parse_http_head(self.head + data)
            except WireViolation as exc:
                self._violation(str(exc))
                return
            if parsed is None:
                self.head += data
                return
            head, data = parsed
            self.head = b""
            if head.status != 101:
                self.refusals[head.status] += 1
                if self.transport is not None:
                    self.transport.close()
                return
            self.upgraded = True
            if self._timer is not None:
                self._timer.cancel()
        try:
            frames = self.parser.feed(data)
        except WireViolation as exc:
            self._violation(str(exc))
            return
        now = self.swarm.loop.time()
        for frame in frames:
            if frame.opcode == OP_TEXT:
                self._text(frame.payload, now)
            elif frame.opcode == OP_PING:
                self.pings.append(now)
                self._write(client_frame(OP_PONG, frame.payload))
            elif frame.opcode == OP_CLOSE:
                code = frame.close_code or 1005
                self.closes.append((now, code))
                self.swarm.close_codes[code] += 1
                self._write(client_frame(OP_CLOSE, frame.payload[:2]))
                if self.transport is not None:
                    self.transport.close()
            elif frame.opcode != OP_PONG:
                self._violation(f"unexpected opcode {frame.opcode:#x}")

    def _text(self, payload: bytes, now: float) -> None:
        if _VERSION in payload:
            self._snapshot(payload, now)
            return
        try:
            message = json.loads(payload)
        except ValueError:
            self._violation(f"a text frame that is not JSON: {payload[:80]!r}")
            return
        kind = message.get("type")
        if kind == "welcome":
            self._failures = 0
            if self.welcomed_at is None:
                self.welcomed_at = now
            self.joining = True
            self.swarm.welcomes += 1
        elif kind == "subscribed":
            self.subscribed = True
            self.joining = False
            self.first_snapshot = True
            self.subscription_last = 0
            if self.subscribed_at is None:
                self.subscribed_at = now
        elif kind == "reconnect":
            self._hint_ms = int(message.get("retryAfterMs", 0))
            self.hints.append((now, self._hint_ms))
        elif kind == "error":
            if self.joining:
                self.joining = False
                self.failed_joins += 1
            self.errors[str(message.get("code"))] += 1
            self.swarm.errors[str(message.get("code"))] += 1

    def _snapshot(self, payload: bytes, now: float) -> None:
        try:
            version = int(_number_after(payload, _VERSION))
        except ValueError:
            self._violation(f"a snapshot without a gameVersion: {payload[:80]!r}")
            return
        # Versions strictly increase within one subscription (DESIGN §2); a new subscription
        # starts again with the latest, which may be the version held before a reconnect.
        if version <= self.subscription_last:
            self.out_of_order += 1
        self.subscription_last = max(self.subscription_last, version)
        self.last_version = max(self.last_version, version)
        self.received += 1
        first, self.first_snapshot = self.first_snapshot, False
        if first:  # the state at subscribe time: as old as the game's last commit
            return
        try:
            sent = float(_number_after(payload, _T))
        except ValueError:
            return
        self.swarm.record_latency(now, time.time() - sent)

    def _violation(self, what: str) -> None:
        self.violations.append(what)
        if self.transport is not None:
            self.transport.abort()

    def _write(self, data: bytes) -> None:
        if self.transport is not None and not self.transport.is_closing():
            self.transport.write(data)


class Swarm:
    """A population of clients spread over targets and games, and what they saw together."""

    def __init__(
        self,
        targets: Sequence[tuple[str, int]],
        *,
        policy: Policy | None = None,
        sources: Sequence[str] = ("127.0.0.1",),
    ) -> None:
        self.loop = asyncio.get_running_loop()
        self.targets = list(targets)
        self.policy = policy or Policy()
        self.sources = list(sources)
        self.clients: list[Client] = []
        self.reconnects = 0
        self.welcomes = 0
        self.close_codes: Counter[int] = Counter()
        self.errors: Counter[str] = Counter()
        #: (loop time received, publish→receive seconds) of every snapshot after the first
        self.latency_at = array("d")
        self.latency = array("d")
        self._tasks: set[asyncio.Task[None]] = set()

    def source(self, index: int) -> str:
        """The loopback address client `index` connects from (spread for per-address caps)."""
        return self.sources[index % len(self.sources)]

    def add(self, count: int, games: Sequence[int], token: Callable[[int], str]) -> list[Client]:
        """Create `count` clients, spread round-robin over games and targets (not connected)."""
        start = len(self.clients)
        new = [
            Client(self, i, games[i % len(games)], token(i), i % len(self.targets))
            for i in range(start, start + count)
        ]
        self.clients += new
        return new

    def spawn(self, coro: Any) -> None:
        task = self.loop.create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def connect(self, clients: Sequence[Client], *, concurrency: int = 200) -> None:
        """Connect `clients`, at most `concurrency` handshakes in flight (0: all at once)."""
        if concurrency <= 0:
            await asyncio.gather(*(c.connect() for c in clients))
            return
        gate = asyncio.Semaphore(concurrency)

        async def one(client: Client) -> None:
            async with gate:
                await client.connect()
                deadline = self.loop.time() + self.policy.handshake_timeout
                while client.connected and client.welcomed_at is None:
                    if self.loop.time() > deadline:
                        break
                    await asyncio.sleep(0.005)  # hold the slot until answered (bounded)

        await asyncio.gather(*(one(c) for c in clients))

    def record_latency(self, at: float, seconds: float) -> None:
        self.latency_at.append(at)
        self.latency.append(seconds)

    def latencies(self, start: float, end: float = float("inf")) -> list[float]:
        """Publish→receive seconds of snapshots received in [start, end) (loop time)."""
        return [
            lat for at, lat in zip(self.latency_at, self.latency, strict=True) if start <= at < end
        ]

    async def until(self, what: str, predicate: Callable[[], bool], timeout: float) -> float:
        """Wait until `predicate()` holds (a deadline, re-checked every 20 ms); seconds taken."""
        start = self.loop.time()
        while not predicate():
            if self.loop.time() - start > timeout:
                raise AssertionError(f"timed out after {timeout}s waiting for {what}")
            await asyncio.sleep(0.02)
        return self.loop.time() - start

    async def close(self) -> None:
        for client in self.clients:
            client.stop()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    # summaries --------------------------------------------------------------------------

    def subscribed(self, clients: Sequence[Client] | None = None) -> int:
        return sum(c.subscribed for c in clients or self.clients)

    def behind(self, newest: dict[int, int], clients: Sequence[Client] | None = None) -> int:
        """Clients not yet holding their game's `newest` version."""
        return sum(c.last_version < newest[c.game] for c in clients or self.clients)

    def violations(self) -> list[str]:
        return [f"client {c.index}: {v}" for c in self.clients for v in c.violations]
