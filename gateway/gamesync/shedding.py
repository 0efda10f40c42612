"""Moving some of this pod's connections to the other pods, paced (the operator's rebalancing).

After a scale-up the new pods only get newcomers: websockets live for hours. The operator asks
an overloaded pod (`POST /v1/shed` on the internal port) to move N connections over T seconds.

Which connections go first: the fewest subscriptions first, then the newest. Each move costs
the client one reconnect and one snapshot per game it watches (the resubscribe fetches the
latest from the broker); a client watching nothing costs a handshake only, so the fewest
subscriptions means the least work for the destination pods and Redis and the fewest bytes sent
again. Among equals the newest go first: the oldest connections have proven stable and are the
players deepest in a session.

How: the same way the drain moves a connection, a `reconnect` message with a jittered
`retryAfterMs` (100-2,000 ms), then close 1012; closes spread evenly over T in batches every
50 ms. While shedding the pod reports not ready (`/readyz`), so the Service stops sending it
newcomers and the moved clients land on the other pods; the operator waits out a readiness
probe before the first move (`delaySeconds`). A shed is refused while the pod drains, while the
broker is unavailable (every reconnect would fail there too) and while another shed runs, and it
stops early if either starts midway.

`plan_order`, `paced` and `drain_seconds` are pure; `Shedder` applies a plan through the
registry's members and owns its one task.
"""

from __future__ import annotations

import asyncio
import logging
import math
import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from gamesync.connection import ConnectionState
from gamesync.protocol import Close, encode
from gamesync.registry import Member, Registry

__all__ = [
    "HOLD_SECONDS",
    "RECONNECT_SPREAD_MS",
    "ShedRefused",
    "Shedder",
    "drain_seconds",
    "paced",
    "plan_order",
]

log = logging.getLogger("gamesync.shedding")

#: Upper bound of the jittered `retryAfterMs` in a drain's or a shed's reconnect hint.
RECONNECT_SPREAD_MS = 2000
#: After the last move the pod stays unready this long, so that the moved clients, waiting out
#: their `retryAfterMs`, land on the other pods rather than back here.
HOLD_SECONDS = RECONNECT_SPREAD_MS / 1000 + 0.5
#: The longest shed one request may ask for, and the longest wait before it starts.
MAX_SECONDS = 3600.0
MAX_DELAY = 300.0


@dataclass(frozen=True, slots=True)
class Candidate:
    """A connection that may be moved: how many games it watches, when it opened."""

    index: int
    subscriptions: int
    opened_at: float


def plan_order(candidates: Sequence[Candidate]) -> list[int]:
    """Indexes of `candidates` in the order they are moved: fewest subscriptions, then newest."""
    ranked = sorted(candidates, key=lambda c: (c.subscriptions, -c.opened_at, c.index))
    return [c.index for c in ranked]


def paced(connections: int, seconds: float, *, tick: float = 0.05) -> tuple[int, float]:
    """(batch size, pause between batches) to close `connections` evenly over `seconds`."""
    if connections <= 0:
        return 0, 0.0
    steps = max(1, min(connections, int(seconds / tick)))
    return math.ceil(connections / steps), seconds / steps


def drain_seconds(connections: int, window: float, rate: float) -> float:
    """How long a drain of `connections` takes: at `rate` a second, within 90 % of `window`.

    `rate` 0 spreads the drain over the whole 90 %. A rate too slow for the window is exceeded:
    after the window the kubelet kills the pod, and a socket cut without a hint reconnects at
    once, unjittered.
    """
    budget = window * 0.9
    if rate <= 0:
        return budget
    return min(budget, connections / rate)


class ShedRefused(Exception):
    """A shed request that cannot be honoured now; `status` is the HTTP status to answer."""

    def __init__(self, status: int, reason: str) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason


class Shedder:
    """This pod's one shed at a time: started by a request, applied in paced batches."""

    def __init__(
        self,
        registry: Registry,
        broker_ready: Callable[[], bool],
        rng: random.Random | None = None,
        *,
        hold: float = HOLD_SECONDS,
    ) -> None:
        self._registry = registry
        self._broker_ready = broker_ready
        self._hold = hold
        self._rng = rng or random.Random()
        self._task: asyncio.Task[None] | None = None
        self.requested = 0  # connections the current (or last) shed was asked to move
        self.done = 0  # of those, moved so far
        self.total = 0  # moved by every shed since start-up

    @property
    def shedding(self) -> bool:
        """A shed is in progress (waiting for its start or moving connections)."""
        return self._task is not None and not self._task.done()

    def stats(self) -> dict[str, Any]:
        """The `shed` object of `/v1/stats`."""
        return {
            "inProgress": self.shedding,
            "requested": self.requested,
            "done": self.done,
            "total": self.total,
        }

    def start(self, connections: int, seconds: float, delay: float = 0.0) -> int:
        """Begin moving `connections` over `seconds` after `delay`; how many it will move.

        ShedRefused (409 draining or already shedding, 503 broker unavailable, 400 nonsense).
        """
        if connections < 1 or not 0 <= seconds <= MAX_SECONDS or not 0 <= delay <= MAX_DELAY:
            raise ShedRefused(
                400,
                f"connections must be >= 1, seconds in [0, {MAX_SECONDS:.0f}], "
                f"delaySeconds in [0, {MAX_DELAY:.0f}]",
            )
        if self._registry.draining:
            raise ShedRefused(409, "draining")
        if self.shedding:
            raise ShedRefused(409, "already shedding")
        if not self._broker_ready():
            raise ShedRefused(503, "broker unavailable")
        count = min(connections, len(self._open()))
        self.requested, self.done = count, 0
        loop = asyncio.get_running_loop()
        self._task = loop.create_task(self._run(count, seconds, delay), name="shed")
        self._task.add_done_callback(self._ended)
        log.info("shedding %d connections over %.1fs after %.1fs", count, seconds, delay)
        return count

    async def finished(self) -> None:
        """Wait until the shed in progress (if any) has ended."""
        task = self._task
        if task is not None:
            await asyncio.gather(task, return_exceptions=True)

    async def stop(self) -> None:
        """Stop a shed in progress (the pod stops or drains)."""
        task = self._task
        if task is not None and not task.done():
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)

    def _open(self) -> list[Member]:
        return [m for m in self._registry.members() if m.conn.state is ConnectionState.OPEN]

    def _ended(self, task: asyncio.Task[None]) -> None:
        if not task.cancelled() and task.exception() is not None:
            # Owned and never silent: a failed shed is logged; the pod carries on serving.
            log.error("shedding failed", exc_info=task.exception())

    def _halt(self) -> str | None:
        if self._registry.draining:
            return "the pod drains"
        if not self._broker_ready():
            return "the broker is unavailable"
        return None

    async def _run(self, count: int, seconds: float, delay: float) -> None:
        if delay > 0:
            await asyncio.sleep(delay)  # the endpoints drop this (now unready) pod meanwhile
        # Chosen when the moves begin, from who is here then.
        members = self._open()
        order = plan_order(
            [
                Candidate(i, len(m.conn.subscriptions), m.conn.opened_at)
                for i, m in enumerate(members)
            ]
        )
        chosen = [members[i] for i in order[:count]]
        batch, pause = paced(len(chosen), seconds)
        for start in range(0, len(chosen), max(batch, 1)):
            why = self._halt()
            if why is not None:
                log.warning("shedding stopped after %d of %d: %s", self.done, count, why)
                return
            for member in chosen[start : start + batch]:
                if member.conn.state is ConnectionState.OPEN:  # not closed meanwhile
                    retry = self._rng.randint(100, RECONNECT_SPREAD_MS)
                    member.send(encode("reconnect", reason="rebalancing", retryAfterMs=retry))
                    member.close(Close.DRAINING, "rebalancing")
                    self.done += 1
                    self.total += 1
            if start + batch < len(chosen):
                await asyncio.sleep(pause)
        log.info("shed %d of %d connections", self.done, count)
        await asyncio.sleep(self._hold)
