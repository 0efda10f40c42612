"""The sessions live on one pod: who is here, who may come in, and what drain and sweep visit.

A session (the websocket one today; any transport) attaches on accept, is admitted once its user
is known, and detaches when it ends. The registry moves connections between CONNECTING, OPEN and
DRAINING (admission and drain); closing belongs to the connection itself. Limits on who may be
here live in this module only: a new cap is a new `Refusal` and a check in `attach` or `admit`.

Caps (issue 12.2, 12's reconnect storm), in the order `attach` checks them:
- the pod's connections, sockets still closing included (`max_connections`): 1013;
- connections not yet authenticated, per pod (`max_pending`) and per client address
  (`max_pending_per_address`, 0: off): 1013. They hold no user yet, so no per-user limit
  bounds them; the auth timeout bounds how long each stays. Connections whose request head
  is overdue (`gamesync.handshake`: stalled) count toward the per-pod cap too;
- admission pacing: `Pacer` admits `admission_rate` a second (`admission_burst` at once);
  those held back get a `reconnect` hint with their own `retryAfterMs` slot, then 1013;
then `admit` applies the per-user limit (4429).
"""

from __future__ import annotations

import asyncio
import math
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from gamesync.connection import Connection, ConnectionEnd, ConnectionState
from gamesync.protocol import Close
from gamesync.ratelimit import Pacer

__all__ = [
    "ADDRESS_LIMIT",
    "PENDING_FULL",
    "POD_FULL",
    "USER_LIMIT",
    "Member",
    "Refusal",
    "Registry",
]


class Member(Protocol):
    """What the registry, the sweeper and the drain need from a session."""

    @property
    def conn(self) -> Connection: ...

    @property
    def token(self) -> str | None:
        """The token the session was admitted with (None until it authenticated)."""

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
    """Why a session may not stay: the close code and reason it is closed with.

    With `retry_after_ms`, a `reconnect` hint carrying it precedes the close.
    """

    code: int
    reason: str
    retry_after_ms: int | None = None


POD_FULL = Refusal(Close.TRY_AGAIN_LATER, "pod full, try another")
PENDING_FULL = Refusal(Close.TRY_AGAIN_LATER, "too many unauthenticated connections")
ADDRESS_LIMIT = Refusal(
    Close.TRY_AGAIN_LATER, "too many unauthenticated connections from this address"
)
USER_LIMIT = Refusal(Close.TOO_MANY_CONNECTIONS, "too many connections for this user")


class Registry:
    """This pod's sessions, its per-user counts and its admission limits."""

    def __init__(
        self,
        *,
        max_connections: int,
        max_connections_per_user: int,
        on_end: Callable[[ConnectionEnd], None],
        max_pending: int | None = None,
        max_pending_per_address: int = 0,
        pacer: Pacer | None = None,
        on_leave: Callable[[Member], None] | None = None,
    ) -> None:
        self._max_connections = max_connections
        self._max_per_user = max_connections_per_user
        self._max_pending = max_connections if max_pending is None else max_pending
        self._max_per_address = max_pending_per_address
        self._pacer = pacer
        self._on_end = on_end
        #: told each session that detaches, before `on_end` (the gateway keeps its token)
        self._on_leave = on_leave
        self._members: set[Member] = set()
        self._users: Counter[str] = Counter()
        self._admitted: set[Member] = set()
        #: not yet authenticated: member -> client address (only these need their address)
        self._pending: dict[Member, str] = {}
        self._pending_by_address: Counter[str] = Counter()
        #: connections whose request head is overdue (no session yet; gamesync.handshake)
        self._stalled = 0
        #: sessions that ended while their socket still closes (it holds its buffer until then)
        self._lingering = 0
        self._empty = asyncio.Event()
        self._empty.set()
        self._draining = False

    # membership --------------------------------------------------------------------------

    def attach(self, member: Member, address: str = "") -> Refusal | None:
        """Count a newly accepted session; a refusal means: close it (it stays attached).

        `address` is the client's (for the per-address cap); "" when unknown.
        """
        self._members.add(member)
        self._empty.clear()
        if len(self._members) + self._lingering > self._max_connections:
            return POD_FULL
        if len(self._pending) + self._stalled >= self._max_pending:
            return PENDING_FULL
        per_address = self._max_per_address
        if per_address and self._pending_by_address[address] >= per_address:
            return ADDRESS_LIMIT
        if self._pacer is not None:
            wait = self._pacer.admit()
            if wait is not None:
                return Refusal(
                    Close.TRY_AGAIN_LATER, "admissions paced, retry later", math.ceil(wait * 1000)
                )
        self._pending[member] = address
        self._pending_by_address[address] += 1
        return None

    def _settled(self, member: Member) -> None:
        """`member` is no longer waiting to authenticate (admitted, or gone)."""
        address = self._pending.pop(member, None)
        if address is not None:
            left = self._pending_by_address[address] - 1
            if left > 0:
                self._pending_by_address[address] = left
            else:
                del self._pending_by_address[address]

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
        self._settled(member)
        self._users[user] += 1
        self._admitted.add(member)
        if conn.state is ConnectionState.CONNECTING:
            conn.transition(ConnectionState.OPEN)
        return None

    def detach(self, member: Member, end: ConnectionEnd) -> None:
        """Forget a session that ended, and report how it ended.

        Its socket counts toward the pod's connections until the transport is gone.
        """
        self._members.discard(member)
        self._settled(member)
        socket = member.conn.socket
        if not socket.is_gone:
            self._lingering += 1
            socket.on_gone = self._released
        elif not self._members and not self._lingering:
            self._empty.set()
        if member in self._admitted:
            self._admitted.discard(member)
            user = end.user_id
            assert user is not None  # admitted sessions are authenticated
            self._users[user] -= 1
            if self._users[user] <= 0:
                del self._users[user]
        if self._on_leave is not None:
            self._on_leave(member)
        self._on_end(end)

    def _released(self) -> None:
        """A socket that outlived its session is gone."""
        self._lingering -= 1
        if not self._members and not self._lingering:
            self._empty.set()

    # what the sweeper, the drain and the metrics see ------------------------------------

    def members(self) -> list[Member]:
        """A copy of the attached sessions, safe to walk while sessions come and go."""
        return list(self._members)

    def __len__(self) -> int:
        return len(self._members)

    def count_by_state(self, transport: str | None = None) -> dict[str, int]:
        """Attached connections per lifecycle state (every state but CLOSED, zeros included),
        of one transport (`websocket`, `sse`) or of all."""
        counts = dict.fromkeys(
            (s.value for s in ConnectionState if s is not ConnectionState.CLOSED), 0
        )
        for member in self._members:
            conn = member.conn
            if transport is None or conn.socket.framing.value == transport:
                state = conn.state.value
                counts[state] = counts.get(state, 0) + 1
        return counts

    @property
    def pending(self) -> int:
        """Connections not yet authenticated, stalled heads included
        (`gamesync_pending_connections`)."""
        return len(self._pending) + self._stalled

    # stalled request heads (gamesync.handshake.StalledHeads) -----------------------------

    @property
    def stalled_full(self) -> bool:
        """Stalled heads alone fill the unauthenticated cap: new connections are refused."""
        return self._stalled >= self._max_pending

    def head_stalled(self) -> None:
        """A connection's request head is overdue: it counts as unauthenticated until done."""
        self._stalled += 1

    def head_unstalled(self) -> None:
        """A stalled head completed, or its connection ended."""
        self._stalled -= 1

    @property
    def pending_top_address(self) -> int:
        """The most unauthenticated connections from any one address."""
        return max(self._pending_by_address.values(), default=0)

    @property
    def lingering(self) -> int:
        """Sockets whose session ended but whose transport is not gone yet."""
        return self._lingering

    async def wait_empty(self, timeout: float) -> bool:
        """Wait until no session (and no closing socket) is left; False if some remain."""
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
