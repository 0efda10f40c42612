"""One client connection: its lifecycle state machine and its conflating outbound writer."""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from enum import Enum
from typing import TYPE_CHECKING, Protocol

from gamesync.framing import Framing, frame
from gamesync.protocol import Close

if TYPE_CHECKING:
    from gamesync.keys import Identity

__all__ = [
    "LIVE",
    "SLOW_ABORT_SECONDS",
    "Closing",
    "Connection",
    "ConnectionEnd",
    "ConnectionState",
    "DeliveryStats",
    "IllegalTransition",
    "Socket",
]

#: Control frames (acks, errors, pongs) a client may leave unread before it counts as slow.
MAX_PENDING_CONTROL = 256

#: Seconds a too-slow client's transport may hold its buffer after the close before an abort.
SLOW_ABORT_SECONDS = 1.0


class Socket(Protocol):
    """What a connection needs from its socket: a websocket (gamesync.transport.GatewaySocket)
    or an SSE stream (gamesync.sse.SseStream)."""

    #: how messages are framed on it (and the `transport` label of its metrics)
    framing: Framing
    last_seen: float
    unwritable_since: float | None
    on_writable: Callable[[], None] | None
    #: called once when the transport is gone (after `is_gone` turns true)
    on_gone: Callable[[], None] | None

    @property
    def is_open(self) -> bool: ...

    @property
    def is_gone(self) -> bool:
        """The transport is released: the socket holds no buffer any more."""
        ...

    @property
    def can_write(self) -> bool:
        """Data frames may be written now: open, and the buffer below its high-water mark.

        Read once per frame by the fan-out: keep it cheap (a plain attribute where it can be).
        """
        ...

    def write_frame(self, frame: bytes) -> None:
        """Write one complete frame. A connection keeps it bound: do not replace it later."""
        ...

    def send_ping(self) -> None: ...

    def close_now(
        self, code: int, reason: str = "", *, abort_after: float | None = None
    ) -> bool: ...

    def abort(self) -> None:
        """Drop the transport at once, buffer and all."""


@dataclass(slots=True)
class DeliveryStats:
    """Hot-path counters shared by the hub and its connections; read at scrape time."""

    deliveries: int = 0
    bytes_out: int = 0
    #: the part of `deliveries` and `bytes_out` written to SSE streams
    sse_deliveries: int = 0
    sse_bytes_out: int = 0
    #: the part of `deliveries` and `bytes_out` written as deltas (at once, not after parking)
    delta_deliveries: int = 0
    delta_bytes_out: int = 0
    conflated: int = 0
    fanouts: int = 0
    stale: int = 0
    unrouted: int = 0
    slow_closes: int = 0


class ConnectionState(Enum):
    """A connection's lifecycle; `Connection.transition` allows only the arrows in `_ALLOWED`.

    CONNECTING -> OPEN -> DRAINING -> CLOSING -> CLOSED; a drain may also catch a connection
    still CONNECTING (it may then authenticate, and is served until its batch is closed), and
    either side may start closing from any live state.
    """

    CONNECTING = "connecting"  # upgraded, not yet authenticated and admitted
    OPEN = "open"  # admitted: serving
    DRAINING = "draining"  # the pod drains: still served until its batch gets `reconnect`
    CLOSING = "closing"  # a close started (by either side): nothing new is accepted
    CLOSED = "closed"  # the session ended and left its games


_ALLOWED = {
    ConnectionState.CONNECTING: {
        ConnectionState.OPEN,
        ConnectionState.DRAINING,
        ConnectionState.CLOSING,
    },
    ConnectionState.OPEN: {ConnectionState.DRAINING, ConnectionState.CLOSING},
    ConnectionState.DRAINING: {ConnectionState.CLOSING},
    ConnectionState.CLOSING: {ConnectionState.CLOSED},
    ConnectionState.CLOSED: set(),
}

#: States the sweeper checks (pings, timeouts, expiry): the connection is being served.
LIVE = frozenset({ConnectionState.OPEN, ConnectionState.DRAINING})


class IllegalTransition(RuntimeError):
    """A lifecycle step that the state machine does not allow."""

    def __init__(self, current: ConnectionState, wanted: ConnectionState) -> None:
        allowed = ", ".join(sorted(s.value for s in _ALLOWED[current]))
        expected = f"from {current.value} only: {allowed}" if allowed else "that state is final"
        super().__init__(
            f"connection is {current.value}; cannot become {wanted.value} ({expected})"
        )
        self.current = current
        self.wanted = wanted


@dataclass(frozen=True, slots=True)
class Closing:
    """Why a connection is closing: the close code and reason, and which side started it."""

    code: int
    reason: str
    by_server: bool


@dataclass(frozen=True, slots=True)
class ConnectionEnd:
    """How a connection ended, for the close metric, the `connection_end` log line and traces."""

    user_id: str | None
    games: list[int]
    duration: float
    closing: Closing
    frames_in: int
    frames_out: int
    #: the socket's transport (`websocket`, `sse`): a metric label
    transport: str = Framing.WEBSOCKET.value


class Connection:
    """Per-connection state. Delivery never awaits: a frame is written now, or parked.

    While the socket is unwritable, each subscribed game keeps only its newest pending frame
    (conflation), so a slow client costs at most one frame per game plus the transport buffer.
    For each game the versions sent strictly increase. A client of protocol 2 that asked for
    deltas (`delta`) gets a game's `delta` frame only when it holds the delta's base version:
    the one written last for that game, with nothing of that game parked.
    """

    __slots__ = (
        "_control",
        "_pending",
        "_write",
        "closing",
        "delta",
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
        "sweep_due",
    )

    def __init__(self, socket: Socket, now: float, stats: DeliveryStats) -> None:
        self.socket = socket
        #: the socket's `write_frame`, bound once (the fan-out's hot path)
        self._write = socket.write_frame
        self.stats = stats
        self.state = ConnectionState.CONNECTING
        self.identity: Identity | None = None
        #: protocol 2: the client applies `delta` frames (decided before any subscription)
        self.delta = False
        #: game id -> highest gameVersion accepted for this connection (-1: none yet)
        self.subscriptions: dict[int, int] = {}
        self._pending: dict[int, bytes] | None = None
        self._control: deque[bytes] | None = None
        self.opened_at = now
        self.idle_since: float | None = now
        self.ping_sent_at: float | None = None
        self.frames_in = 0
        self.frames_out = 0
        #: why it closes: set on entering CLOSING
        self.closing: Closing | None = None
        #: loop time before which the sweeper has nothing to check here (0: look next tick)
        self.sweep_due = 0.0

    # lifecycle ---------------------------------------------------------------------------

    def transition(self, wanted: ConnectionState) -> None:
        """Move to `wanted`, or raise IllegalTransition naming both states."""
        if wanted not in _ALLOWED[self.state]:
            raise IllegalTransition(self.state, wanted)
        self.state = wanted

    @property
    def user_id(self) -> str | None:
        return self.identity.user_id if self.identity else None

    def is_closing(self) -> bool:
        """A close has started (CLOSING) or the session is over (CLOSED).

        A method, not a property: it changes across awaits, which type checkers would not see.
        """
        return self.state is ConnectionState.CLOSING or self.state is ConnectionState.CLOSED

    def close(
        self,
        code: int,
        reason: str,
        *,
        last_words: bytes | None = None,
        abort_after: float | None = None,
    ) -> bool:
        """Close from the server: CLOSING, then the last words, then the close frame.

        Parked control messages and `last_words` (an error, a drain's `reconnect` hint) are
        written before the close frame even when the socket is unwritable; parked snapshots are
        dropped (a reconnecting client gets the latest anyway). False if already closing.
        """
        if not self._start_closing(Closing(code, reason, by_server=True)):
            return False
        if last_words is not None:
            self.send_message(last_words)
        self.flush_before_close()
        self.socket.close_now(code, reason, abort_after=abort_after)
        return True

    def closed_by_peer(self, code: int, reason: str) -> None:
        """The client closed (or the socket was lost): CLOSING, unless already."""
        self._start_closing(Closing(code, reason, by_server=False))

    def finish(self, now: float) -> ConnectionEnd:
        """Enter CLOSED, the end of the lifecycle, and say how the connection ended."""
        # A session that ended with no close seen (cancelled at shutdown) counts as a client's
        # 1000, as it always has in the close metric.
        self._start_closing(Closing(Close.NORMAL, "", by_server=False))
        self.transition(ConnectionState.CLOSED)
        assert self.closing is not None  # set by _start_closing
        return ConnectionEnd(
            user_id=self.user_id,
            games=sorted(self.subscriptions),
            duration=now - self.opened_at,
            closing=self.closing,
            frames_in=self.frames_in,
            frames_out=self.frames_out,
            transport=self.socket.framing.value,
        )

    def _start_closing(self, closing: Closing) -> bool:
        if self.is_closing():
            return False
        self.transition(ConnectionState.CLOSING)
        self.closing = closing
        return True

    def ping(self, now: float) -> None:
        """Send a heartbeat ping; any frame back answers it (DESIGN §2)."""
        self.socket.send_ping()
        self.ping_sent_at = now

    # outbound ----------------------------------------------------------------------------

    def send_message(self, payload: bytes) -> bool:
        """Send an encoded control message in order; False if the client is too far behind."""
        framed = frame(self.socket.framing, payload)
        if self._control is None and self._pending is None and self.socket.can_write:
            self.socket.write_frame(framed)
            self.frames_out += 1
            return True
        if not self.socket.is_open:
            return True  # closing anyway: nothing to keep
        if self._control is None:
            self._control = deque()
        if len(self._control) >= MAX_PENDING_CONTROL:
            return False
        self._control.append(framed)
        return True

    def deliver(self, game_id: int, version: int, frame: bytes) -> int:
        """Offer a snapshot frame. Returns 1 if written, 0 if parked or dropped as not newer."""
        sent = self.subscriptions.get(game_id)
        if sent is None or version <= sent:
            return 0
        self.subscriptions[game_id] = version
        if self.socket.can_write and self._pending is None and self._control is None:
            self._write(frame)
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

    def deliver_delta(
        self, game_id: int, base: int, version: int, delta_frame: bytes, full_frame: bytes
    ) -> bytes | None:
        """Offer a version as a delta from `base` or, when the client may not hold `base`, in
        full. Returns the frame written now, or None if parked or dropped as not newer.

        The client holds `base` when `base` was the last version accepted for this game and it
        is not parked: a parked frame replaced by this one never reaches the client, so what
        replaces it must be the full snapshot (conflation).
        """
        sent = self.subscriptions.get(game_id)
        if sent is None or version <= sent:
            return None
        self.subscriptions[game_id] = version
        holds_base = sent == base and sent >= 0  # -1: subscribed, nothing sent yet
        pending = self._pending
        if self.socket.can_write and pending is None and self._control is None:
            frame = delta_frame if holds_base else full_frame
            self._write(frame)
            self.frames_out += 1
            return frame
        if not self.socket.is_open:
            return None
        if pending is None:
            pending = self._pending = {}
        if game_id in pending:
            self.stats.conflated += 1
            pending[game_id] = full_frame
        else:
            pending[game_id] = delta_frame if holds_base else full_frame
        return None

    def end_subscription(self, game_id: int, now: float, *messages: bytes) -> None:
        """End a subscription from the server's side: forget the game, then say why.

        A client too far behind to take the messages is closed 1013 instead.
        """
        self.forget(game_id)
        if not self.subscriptions and self.idle_since is None:
            self.idle_since = now
        for payload in messages:
            if not self.send_message(payload):
                self.close(Close.TRY_AGAIN_LATER, "client too slow", abort_after=SLOW_ABORT_SECONDS)
                return

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
        size = sum(len(f) for f in pending.values())
        stats = self.stats
        stats.deliveries += len(pending)
        stats.bytes_out += size
        if self.socket.framing is Framing.SSE:
            stats.sse_deliveries += len(pending)
            stats.sse_bytes_out += size
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
