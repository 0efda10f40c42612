"""The pod's one timer: pings, heartbeat and idle timeouts, expired tokens, revoked keys, slowness.

`heartbeat.decide` gives a pure verdict per connection; this module applies it to every session
in the registry, a slice at a time. No timer handle per connection. One session's failure never
stops the pass: it is logged (rate-limited) and that session's socket is dropped.

A session is judged only when something may be due: each visit records when its next deadline
falls (`heartbeat.next_check`, at most `horizon` ahead), and the passes in between skip it
unless its socket stopped taking writes. A connected player that is heard from costs a visit
every few seconds instead of one a tick, the same verdicts at the same times.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import time

from gamesync.connection import SLOW_ABORT_SECONDS, Connection, DeliveryStats
from gamesync.heartbeat import KEY_REVOKED, Action, Limits, Timers, decide, next_check
from gamesync.metrics import GatewayMetrics
from gamesync.protocol import Close
from gamesync.registry import Member, Registry
from gamesync.supervisor import ErrorLog

__all__ = ["SWEEP_SLICES", "Sweeper"]

log = logging.getLogger("gamesync.sweeper")

#: The sweeper visits every session once per tick, spread over this many slices.
SWEEP_SLICES = 20

#: Revoked kids are forgotten this long after their sessions were all due to close.
_REVOKED_KEPT_SECONDS = 60.0


def _spread(conn: Connection) -> float:
    """A fraction in [0, 1), fixed for one connection, spreading its key-revocation close."""
    # Knuth's multiplicative hash of the object's address: cheap, stable, evenly spread.
    return ((id(conn) >> 4) * 2654435761 % 4294967296) / 4294967296


class Sweeper:
    """Checks every session once per tick and applies the verdict (ping or close)."""

    def __init__(
        self, registry: Registry, limits: Limits, stats: DeliveryStats, metrics: GatewayMetrics
    ) -> None:
        self.registry = registry
        self.limits = limits
        self._stats = stats
        self._metrics = metrics
        self._errors = ErrorLog(log)
        #: kid -> loop time it left the key set; sessions it signed are closed 4401
        self.revoked: dict[str, float] = {}

    @property
    def tick(self) -> float:
        """Seconds between two visits of one session: a quarter of the shortest timer, ≤ 1 s."""
        limits = self.limits
        return min(1.0, limits.ping_interval / 4, limits.idle_timeout / 4, limits.ping_timeout / 4)

    @property
    def horizon(self) -> float:
        """The longest a live session goes unjudged: a change that brings one of its deadlines
        forward (it turned idle, it was admitted) is seen within this. A quarter of the
        shortest ping or idle timer, at least a tick."""
        limits = self.limits
        shortest = min(limits.ping_interval, limits.ping_timeout, limits.idle_timeout)
        return max(self.tick, shortest / 4)

    def revoke(self, kids: set[str], now: float) -> None:
        """The key set lost `kids` (at loop time `now`); kids back in the set are restored."""
        for kid in kids:
            self.revoked.setdefault(kid, now)
        if kids:
            for member in self.registry.members():  # each session looks at its key next tick
                member.conn.sweep_due = 0.0

    def restore(self, kids: set[str]) -> None:
        """`kids` are in the key set (again): their sessions stay."""
        for kid in kids:
            self.revoked.pop(kid, None)

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
            self._forget_revoked(loop.time())

    def sweep(self, now: float, wall_now: float, members: list[Member] | None = None) -> None:
        """Check `members` (default: every session) at loop time `now`, Unix time `wall_now`."""
        for member in self.registry.members() if members is None else members:
            conn = member.conn
            # Nothing due: skipped without a verdict. A socket that stopped taking writes is
            # judged every tick, since it may have stopped after this session's last visit.
            if conn.sweep_due > now and conn.socket.unwritable_since is None:
                continue
            try:
                self._visit(member, now, wall_now)
            except Exception as exc:
                # A bug in one session's close must not stop the others' pings and closes.
                conn = member.conn
                self._errors.error(
                    "visit",
                    f"sweeping a session failed (state {conn.state.value}, user "
                    f"{conn.user_id!r}); dropping its socket",
                    exc,
                )
                with contextlib.suppress(Exception):
                    conn.socket.abort()

    def _visit(self, member: Member, now: float, wall_now: float) -> None:
        conn = member.conn
        verdict = decide(now=now, wall_now=wall_now, limits=self.limits, **self._timers(conn))
        if verdict.action is Action.PING:
            conn.ping(now)
        elif verdict.action is Action.CLOSE:
            abort_after = None
            if verdict.code == Close.TRY_AGAIN_LATER:
                self._stats.slow_closes += 1
                abort_after = SLOW_ABORT_SECONDS
            elif verdict.code == Close.UNAUTHORIZED:
                if verdict is KEY_REVOKED:
                    self._metrics.auth_failed("signing key revoked on a live connection")
                else:
                    self._metrics.auth_failed("token expired on a live connection")
            member.close(verdict.code, verdict.reason, error=verdict.error, abort_after=abort_after)
        # When to look again: the fields as the verdict left them (a ping just sent, a close).
        due = next_check(now=now, wall_now=wall_now, limits=self.limits, **self._timers(conn))
        conn.sweep_due = min(due, now + self.horizon)

    def _timers(self, conn: Connection) -> Timers:
        """The connection's fields the verdict and the next check read, as they are now."""
        identity = conn.identity
        revoked_at = None
        if self.revoked and identity is not None and identity.kid is not None:
            revoked_at = self.revoked.get(identity.kid)
        return Timers(
            state=conn.state,
            expires_at=identity.expires_at if identity is not None else None,
            last_seen=conn.socket.last_seen,
            ping_sent_at=conn.ping_sent_at,
            idle_since=conn.idle_since,
            unwritable_since=conn.socket.unwritable_since,
            revoked_at=revoked_at,
            spread=_spread(conn) if revoked_at is not None else 0.0,
        )

    def _forget_revoked(self, now: float) -> None:
        horizon = self.limits.revoke_spread + _REVOKED_KEPT_SECONDS
        for kid, since in list(self.revoked.items()):
            if now - since > horizon:
                del self.revoked[kid]
