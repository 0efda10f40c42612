"""One client connection: its lifecycle state machine and its conflating outbound writer."""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from enum import Enum
from typing import TYPE_CHECKING, Protocol

from gamesync.protocol import text_frame

if TYPE_CHECKING:
    from gamesync.keys import Identity

__all__ = ["Connection", "ConnectionState", "DeliveryStats", "IllegalTransition", "Socket"]

#: Control frames (acks, errors, pongs) a client may leave unread before it counts as slow.
MAX_PENDING_CONTROL = 256


class Socket(Protocol):
    """What a connection needs from its websocket (gamesync.transport.GatewaySocket)."""

    last_seen: float
    unwritable_since: float | None
    on_writable: Callable[[], None] | None

    @property
    def is_open(self) -> bool: ...

    @property
    def can_write(self) -> bool: ...

    def write_frame(self, frame: bytes) -> None: ...


@dataclass(slots=True)
class DeliveryStats:
    """Hot-path counters shared by the hub and its connections; read at scrape time."""

    deliveries: int = 0
    bytes_out: int = 0
    conflated: int = 0
    fanouts: int = 0
    stale: int = 0
    unrouted: int = 0
    slow_closes: int = 0


class ConnectionState(Enum):
    CONNECTING = "connecting"  # upgraded, not yet authenticated
    OPEN = "open"
    DRAINING = "draining"  # told to reconnect elsewhere, close pending
    CLOSED = "closed"


_ALLOWED = {
    ConnectionState.CONNECTING: {
        ConnectionState.OPEN,
        ConnectionState.DRAINING,
        ConnectionState.CLOSED,
    },
    ConnectionState.OPEN: {ConnectionState.DRAINING, ConnectionState.CLOSED},
    ConnectionState.DRAINING: {ConnectionState.CLOSED},
    ConnectionState.CLOSED: set(),
}


class IllegalTransition(RuntimeError):
    """A lifecycle step that the state machine does not allow."""

    def __init__(self, current: ConnectionState, wanted: ConnectionState) -> None:
        super().__init__(f"connection is {current.value}; cannot become {wanted.value}")


class Connection:
    """Per-connection state. Delivery never awaits: a frame is written now, or parked.

    While the socket is unwritable, each subscribed game keeps only its newest pending frame
    (conflation), so a slow client costs at most one frame per game plus the transport buffer.
    For each game the versions sent strictly increase.
    """

    __slots__ = (
        "_control",
        "_pending",
        "frames_in",
        "frames_out",
        "identity",
        "idle_since",
        "opened_at",
        "ping_sent_at",
        "socket",
        "state",
        "stats",
        "subscriptions",
        "token_expired_notified",
    )

    def __init__(self, socket: Socket, now: float, stats: DeliveryStats) -> None:
        self.socket = socket
        self.stats = stats
        self.state = ConnectionState.CONNECTING
        self.identity: Identity | None = None
        #: game id -> highest gameVersion accepted for this connection (-1: none yet)
        self.subscriptions: dict[int, int] = {}
        self._pending: dict[int, bytes] | None = None
        self._control: deque[bytes] | None = None
        self.opened_at = now
        self.idle_since: float | None = now
        self.ping_sent_at: float | None = None
        self.frames_in = 0
        self.frames_out = 0
        self.token_expired_notified = False

    # lifecycle ---------------------------------------------------------------------------

    def transition(self, wanted: ConnectionState) -> None:
        """Move to `wanted`, or raise IllegalTransition naming both states."""
        if wanted not in _ALLOWED[self.state]:
            raise IllegalTransition(self.state, wanted)
        self.state = wanted

    @property
    def user_id(self) -> str | None:
        return self.identity.user_id if self.identity else None

    # outbound ----------------------------------------------------------------------------

    def send_message(self, payload: bytes) -> bool:
        """Send an encoded control message in order; False if the client is too far behind."""
        frame = text_frame(payload)
        if self._control is None and self._pending is None and self.socket.can_write:
            self.socket.write_frame(frame)
            self.frames_out += 1
            return True
        if not self.socket.is_open:
            return True  # closing anyway: nothing to keep
        if self._control is None:
            self._control = deque()
        if len(self._control) >= MAX_PENDING_CONTROL:
            return False
        self._control.append(frame)
        return True

    def deliver(self, game_id: int, version: int, frame: bytes) -> int:
        """Offer a snapshot frame. Returns 1 if written, 0 if parked or dropped as not newer."""
        sent = self.subscriptions.get(game_id)
        if sent is None or version <= sent:
            return 0
        self.subscriptions[game_id] = version
        if self._control is None and self._pending is None and self.socket.can_write:
            self.socket.write_frame(frame)
            self.frames_out += 1
            return 1
        if not self.socket.is_open:
            return 0
        if self._pending is None:
            self._pending = {}
        elif game_id in self._pending:
            self.stats.conflated += 1
        self._pending[game_id] = frame
        return 0

    def forget(self, game_id: int) -> None:
        """Drop the game's subscription and any frame parked for it."""
        self.subscriptions.pop(game_id, None)
        if self._pending is not None:
            self._pending.pop(game_id, None)
            if not self._pending:
                self._pending = None

    def flush(self) -> int:
        """Write what was parked (control messages first) once the socket drains.

        Returns the number of snapshot frames written (already counted in `stats`).
        """
        if not self.socket.can_write:
            return 0
        control, self._control = self._control, None
        if control:
            for frame in control:
                self.socket.write_frame(frame)
            self.frames_out += len(control)
        pending, self._pending = self._pending, None
        if not pending:
            return 0
        for frame in pending.values():
            self.socket.write_frame(frame)
        self.frames_out += len(pending)
        self.stats.deliveries += len(pending)
        self.stats.bytes_out += sum(len(f) for f in pending.values())
        return len(pending)

    def flush_before_close(self) -> None:
        """Write parked control messages now, writable or not: the socket is about to close.

        The last words (an error's reason, a drain's `reconnect` hint) must precede the close
        frame. Parked snapshots are dropped: a reconnecting client gets the latest anyway.
        """
        control, self._control = self._control, None
        self._pending = None
        if control and self.socket.is_open:
            for frame in control:
                self.socket.write_frame(frame)
            self.frames_out += len(control)

    @property
    def backlog(self) -> int:
        """Frames parked while the socket was unwritable."""
        return len(self._control or ()) + len(self._pending or ())
