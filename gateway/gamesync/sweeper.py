"""The pod's one timer: pings, heartbeat and idle timeouts, token expiry, slow clients.

`heartbeat.decide` gives a pure verdict per connection; this module applies it to every session
in the registry, a slice at a time. No timer handle per connection.
"""

from __future__ import annotations

import asyncio
import math
import time

from gamesync.connection import DeliveryStats
from gamesync.heartbeat import Action, Limits, decide
from gamesync.metrics import GatewayMetrics
from gamesync.protocol import Close
from gamesync.registry import Member, Registry

__all__ = ["SWEEP_SLICES", "Sweeper"]

#: The sweeper visits every session once per tick, spread over this many slices.
SWEEP_SLICES = 20

#: Seconds a slow client's transport may hold its buffer after the close before it is aborted.
SLOW_ABORT_SECONDS = 1.0


class Sweeper:
    """Checks every session once per tick and applies the verdict (ping or close)."""

    def __init__(
        self, registry: Registry, limits: Limits, stats: DeliveryStats, metrics: GatewayMetrics
    ) -> None:
        self.registry = registry
        self.limits = limits
        self._stats = stats
        self._metrics = metrics

    @property
    def tick(self) -> float:
        """Seconds between two visits of one session: a quarter of the shortest timer, ≤ 1 s."""
        limits = self.limits
        return min(1.0, limits.ping_interval / 4, limits.idle_timeout / 4, limits.ping_timeout / 4)

    async def run(self) -> None:
        """Sweep forever (an owned background task)."""
        tick = self.tick
        loop = asyncio.get_running_loop()
        while True:
            # Each session is visited once per tick, in slices, so that a pass over tens of
            # thousands never holds the loop for more than a slice's worth (~1 ms).
            members = self.registry.members()
            slices = max(1, min(SWEEP_SLICES, len(members)))
            size = math.ceil(len(members) / slices) if members else 0
            for start in range(0, slices):
                await asyncio.sleep(tick / slices)
                part = members[start * size : (start + 1) * size]
                if part:
                    self.sweep(loop.time(), time.time(), part)

    def sweep(self, now: float, wall_now: float, members: list[Member] | None = None) -> None:
        """Check `members` (default: every session) at loop time `now`, Unix time `wall_now`."""
        limits = self.limits
        for member in self.registry.members() if members is None else members:
            conn = member.conn
            socket = conn.socket
            identity = conn.identity
            verdict = decide(
                now=now,
                wall_now=wall_now,
                state=conn.state,
                expires_at=identity.expires_at if identity is not None else None,
                last_seen=socket.last_seen,
                ping_sent_at=conn.ping_sent_at,
                idle_since=conn.idle_since,
                unwritable_since=socket.unwritable_since,
                limits=limits,
            )
            if verdict.action is Action.PING:
                conn.ping(now)
            elif verdict.action is Action.CLOSE:
                abort_after = None
                if verdict.code == Close.TRY_AGAIN_LATER:
                    self._stats.slow_closes += 1
                    abort_after = SLOW_ABORT_SECONDS
                elif verdict.code == Close.UNAUTHORIZED:
                    self._metrics.auth_failed("token expired on a live connection")
                member.close(
                    verdict.code, verdict.reason, error=verdict.error, abort_after=abort_after
                )
