"""The sessions live on one pod: who is here, who may come in, and what drain and sweep visit.

A session (the websocket one today; any transport) attaches on accept, is admitted once its user
is known, and detaches when it ends. The registry moves connections between CONNECTING, OPEN and
DRAINING (admission and drain); closing belongs to the connection itself. Limits on who may be
here live in this module only: a new cap is a new `Refusal` and a check in `attach` or `admit`.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from gamesync.connection import Connection, ConnectionEnd, ConnectionState
from gamesync.protocol import Close

__all__ = ["POD_FULL", "USER_LIMIT", "Member", "Refusal", "Registry"]


class Member(Protocol):
    """What the registry, the sweeper and the drain need from a session."""

    @property
    def conn(self) -> Connection: ...

    def send(self, payload: bytes) -> None:
        """Send an encoded control message in order (closing the session if it is too slow)."""

    def close(
        self,
        code: int,
        reason: str,
        *,
        error: str | None = None,
        abort_after: float | None = None,
    ) -> None:
        """Close from the server, after an `error` frame with code `error` if given."""


@dataclass(frozen=True, slots=True)
class Refusal:
    """Why a session may not stay: the close code and reason it is closed with."""

    code: int
    reason: str


POD_FULL = Refusal(Close.TRY_AGAIN_LATER, "pod full, try another")
USER_LIMIT = Refusal(Close.TOO_MANY_CONNECTIONS, "too many connections for this user")


class Registry:
    """This pod's sessions, its per-user counts and its admission limits."""

    def __init__(
        self,
        *,
        max_connections: int,
        max_connections_per_user: int,
        on_end: Callable[[ConnectionEnd], None],
    ) -> None:
        self._max_connections = max_connections
        self._max_per_user = max_connections_per_user
        self._on_end = on_end
        self._members: set[Member] = set()
        self._users: Counter[str] = Counter()
        self._admitted: set[Member] = set()
        self._empty = asyncio.Event()
        self._empty.set()
        self._draining = False

    # membership --------------------------------------------------------------------------

    def attach(self, member: Member) -> Refusal | None:
        """Count a newly accepted session; a refusal means: close it (it stays attached)."""
        self._members.add(member)
        self._empty.clear()
        if len(self._members) > self._max_connections:
            return POD_FULL
        return None

    def admit(self, member: Member) -> Refusal | None:
        """Admit an authenticated session (CONNECTING -> OPEN) unless its user is at the limit.

        A session the drain caught while it authenticated is admitted but stays DRAINING.
        """
        conn = member.conn
        user = conn.user_id
        if user is None:
            raise ValueError("admit() needs an authenticated connection")
        if self._users[user] >= self._max_per_user:
            return USER_LIMIT
        self._users[user] += 1
        self._admitted.add(member)
        if conn.state is ConnectionState.CONNECTING:
            conn.transition(ConnectionState.OPEN)
        return None

    def detach(self, member: Member, end: ConnectionEnd) -> None:
        """Forget a session that ended, and report how it ended."""
        self._members.discard(member)
        if not self._members:
            self._empty.set()
        if member in self._admitted:
            self._admitted.discard(member)
            user = end.user_id
            assert user is not None  # admitted sessions are authenticated
            self._users[user] -= 1
            if self._users[user] <= 0:
                del self._users[user]
        self._on_end(end)

    # what the sweeper, the drain and the metrics see ------------------------------------

    def members(self) -> list[Member]:
        """A copy of the attached sessions, safe to walk while sessions come and go."""
        return list(self._members)

    def __len__(self) -> int:
        return len(self._members)

    def count_by_state(self) -> dict[str, int]:
        """Attached connections per lifecycle state (every state but CLOSED, zeros included)."""
        counts = dict.fromkeys(
            (s.value for s in ConnectionState if s is not ConnectionState.CLOSED), 0
        )
        for member in self._members:
            state = member.conn.state.value
            counts[state] = counts.get(state, 0) + 1
        return counts

    async def wait_empty(self, timeout: float) -> bool:
        """Wait until no session is left; False if some remain after `timeout`."""
        try:
            async with asyncio.timeout(timeout):
                await self._empty.wait()
        except TimeoutError:
            return False
        return True

    # drain -------------------------------------------------------------------------------

    @property
    def draining(self) -> bool:
        """The pod drains: new upgrades are refused."""
        return self._draining

    def start_draining(self) -> list[Member]:
        """Refuse new upgrades from now on; move every live session to DRAINING and return them."""
        self._draining = True
        caught = []
        for member in self._members:
            conn = member.conn
            if conn.state is ConnectionState.CONNECTING or conn.state is ConnectionState.OPEN:
                conn.transition(ConnectionState.DRAINING)
                caught.append(member)
        return caught
