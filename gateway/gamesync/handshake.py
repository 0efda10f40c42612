"""A connection before its request head is complete: bounded in time, bytes and number.

Until the head (request line and headers) has arrived, no session exists, so none of the
session's limits apply; uvicorn's HTTP protocol waits for the rest of a head for as long as
the client likes, and buffers as much of it as the client sends. Here (issue 12, slowloris):
- a head must be complete within `--handshake-timeout` (10 s): else 408 and close;
- a head over `MAX_HEAD_BYTES` gets 431 and close (websockets' own parser refuses a line over
  8 KiB or over 128 header fields with 414/431 after this; see `gamesync.transport`);
- a head still incomplete after `STALLED_AFTER` counts as an unauthenticated connection (the
  registry's `--max-pending-connections`) until it completes or ends; while stalled heads
  alone fill that cap, new connections get 503 at once.
A head that arrives at once (every real client, and a storm of them) is never counted: a
storm's connections are accepted thousands at a time before any head is read, and counting
those would refuse them with 5xx instead of the paced 1013s admission gives them.

An address penalised for abuse (`gamesync.abuse`) is refused here with 429 and `Retry-After`,
before the pod does any work for it: when the peer is the client, by `Doorman` as the
connection is made, before uvicorn's HTTP protocol is even built for it (an attacker refused
retries thousands of times a second); behind a proxy that names the client in a header, once
the upgrade request's head has parsed (before the upgrade, the token and the session). A
refused head (408, 431 here; 414, 431 from websockets' parser) counts as an offence of its peer.

A storm is also paced here (issue 12, reconnect storm): the event loop hands every readable
socket its data in one turn, so thousands of connections arriving at once meant thousands of
handshakes (parse, upgrade, token check, welcome) run back to back while deliveries to the
connected clients waited. `HeadTurns` lets `HEADS_PER_TURN` new connections start their
handshake per turn of the loop; the others wait their turn in arrival order, unread (their
clock stopped: they wait on us, not on the client).
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Callable
from typing import Any, Protocol, cast

from gamesync.abuse import client_address
from gamesync.sse import GatewayHTTP

__all__ = [
    "HEADS_PER_TURN",
    "HEAD_TIMEOUT",
    "MAX_HEAD_BYTES",
    "STALLED_AFTER",
    "Doorman",
    "GuardedHTTP",
    "HeadTurns",
    "StalledHeads",
]

#: Seconds a request head may take (the default of `--handshake-timeout`).
HEAD_TIMEOUT = 10.0
#: Seconds after which an incomplete head counts as an unauthenticated connection: far above
#: a real client's head (one write, milliseconds) even on a busy pod.
STALLED_AFTER = 2.0
#: New connections whose first request head is handled per turn of the event loop: a
#: handshake costs ~0.3-0.5 ms of CPU, so a turn spends ~1-2 ms on them at most. 4 rather
#: than 16: connected clients' p99 under the hostile-clients attack 18-25 -> 13-16 ms at large
#: size, with the same admissions per CPU-second in `gamesync bench storm` (docs/RELIABILITY.md).
HEADS_PER_TURN = 4
#: Bytes a request head may have: the headers a browser and a proxy add, a token in the
#: query or the `Authorization` header (8 KiB at most: websockets' line limit), with room.
MAX_HEAD_BYTES = 32 * 1024


class StalledHeads(Protocol):
    """Where stalled heads are counted (`gamesync.registry.Registry`)."""

    @property
    def stalled_full(self) -> bool:
        """Stalled heads alone fill the unauthenticated cap."""

    def head_stalled(self) -> None:
        """Count one more stalled head."""

    def head_unstalled(self) -> None:
        """A stalled head completed or its connection ended."""


class HeadTurns:
    """At most `per_turn` new connections start their handshake per turn of the event loop;
    the others wait in arrival order, their reading paused."""

    def __init__(self, per_turn: int = HEADS_PER_TURN) -> None:
        self.per_turn = per_turn
        self._used = 0
        self._scheduled = False
        self._waiting: deque[tuple[GuardedHTTP, bytes]] = deque()

    def admit(self, protocol: GuardedHTTP, data: bytes) -> bool:
        """True: handle `data` now; False: it waits its turn (reading paused meanwhile)."""
        self._schedule(protocol.loop)
        if self._waiting or self._used >= self.per_turn:
            self._waiting.append((protocol, data))
            protocol.transport.pause_reading()
            return False
        self._used += 1
        return True

    @property
    def waiting(self) -> int:
        """Connections waiting for their turn."""
        return len(self._waiting)

    def _schedule(self, loop: asyncio.AbstractEventLoop) -> None:
        if not self._scheduled:
            self._scheduled = True
            loop.call_soon(self._next_turn, loop)

    def _next_turn(self, loop: asyncio.AbstractEventLoop) -> None:
        self._scheduled = False
        self._used = 0
        waiting = self._waiting
        while waiting and self._used < self.per_turn:
            protocol, data = waiting.popleft()
            if protocol.transport.is_closing():
                continue  # gone while it waited
            self._used += 1
            protocol.transport.resume_reading()
            protocol.take_turn(data)
        if waiting:
            self._schedule(loop)


def _response(status: int, phrase: str, *, retry_after: int | None = None) -> bytes:
    retry = "" if retry_after is None else f"retry-after: {retry_after}\r\n"
    return (
        f"HTTP/1.1 {status} {phrase}\r\n{retry}connection: close\r\ncontent-length: 0\r\n\r\n"
    ).encode()


class Penalty(Protocol):
    """Where offences count and penalised addresses are refused (`gamesync.abuse.AbusePenalty`)."""

    #: the trusted proxy header naming the client; None: the peer is the client
    header: str | None

    def refusal(self, address: str) -> int | None:
        """None to let `address` in; else the seconds until it may try again."""

    def head_refused(self, status: int, peer: str) -> None:
        """A head from `peer` was refused with `status`."""


_REFUSALS = {
    408: _response(408, "Request Timeout"),
    431: _response(431, "Request Header Fields Too Large"),
    503: _response(503, "Service Unavailable"),
}


class GuardedHTTP(GatewayHTTP):
    """The public port's HTTP protocol, with the request head bounded (module docstring)."""

    #: where stalled heads count; None: nowhere (`configured`)
    heads: StalledHeads | None = None
    #: seconds a head may take
    head_timeout = HEAD_TIMEOUT
    #: called with the status of a refusal sent here (408, 431, 503)
    on_refused: Callable[[int], None] | None = None
    #: paces the first heads of new connections (`guarded`); None: no pacing
    turns: HeadTurns | None = None
    #: refuses penalised addresses, counts refused heads (`guarded`); None: off
    penalty: Penalty | None = None
    #: this connection's first head has had its turn
    _had_turn = False
    # per connection, while a head is awaited
    _head_timer: asyncio.TimerHandle | None = None
    _head_bytes = -1  # -1: no head awaited
    _stalled = False

    @classmethod
    def guarded(
        cls,
        *,
        close_timeout: float,
        head_timeout: float,
        heads: StalledHeads,
        on_refused: Callable[[int], None],
        turns: HeadTurns | None = None,
        penalty: Penalty | None = None,
    ) -> type[GuardedHTTP]:
        """This class with its bounds set (uvicorn instantiates the class it is given)."""
        attrs: dict[str, Any] = {
            "close_bound": close_timeout,
            "head_timeout": head_timeout,
            "heads": heads,
            "on_refused": staticmethod(on_refused),
            "turns": turns,
            "penalty": penalty,
        }
        return type(cls.__name__, (cls,), attrs)

    def connection_made(self, transport: Any) -> None:
        super().connection_made(transport)
        if self.heads is not None and self.heads.stalled_full:
            self._refuse(503)
        else:
            self._await_head()

    def data_received(self, data: bytes) -> None:
        if not self._had_turn and self.turns is not None:
            self._had_turn = True
            if not self.turns.admit(self, data):
                self._head_done()  # its clock stops while it waits on us
                self._head_bytes = 0
                return
        self.take_turn(data)

    def take_turn(self, data: bytes) -> None:
        """Handle `data` (the first chunk of this connection's head, once it is its turn)."""
        if self._head_bytes >= 0 and self._head_timer is None and not self.transport.is_closing():
            self._await_head(counted=self._head_bytes)  # its clock starts again
        if self._head_bytes >= 0:
            self._head_bytes += len(data)
            if self._head_bytes > MAX_HEAD_BYTES:
                self._head_done()
                self._refuse(431)
                return
        super().data_received(data)

    def on_message_begin(self) -> None:
        super().on_message_begin()
        if self._head_bytes < 0 and not self.transport.is_closing():
            self._await_head()  # the next request on a kept-alive connection

    def on_headers_complete(self) -> None:
        self._head_done()
        penalty = self.penalty
        if penalty is not None and penalty.header is not None and self.parser.should_upgrade():
            retry_after = penalty.refusal(client_address(self.scope, penalty.header))
            if retry_after is not None:
                self._refuse(429, retry_after)  # and the upgrade is not made
                return
        super().on_headers_complete()

    def handle_websocket_upgrade(self) -> None:
        if not self.transport.is_closing():  # refused (429) as its head completed
            super().handle_websocket_upgrade()

    def connection_lost(self, exc: Exception | None) -> None:
        self._head_done()
        super().connection_lost(exc)

    # the head's clock ----------------------------------------------------------------------

    def _await_head(self, counted: int = 0) -> None:
        self._head_bytes = counted
        self._head_timer = self.loop.call_later(
            min(STALLED_AFTER, self.head_timeout), self._head_stalled
        )

    def _head_stalled(self) -> None:
        if self.heads is not None and not self._stalled:
            self._stalled = True
            self.heads.head_stalled()
        left = self.head_timeout - STALLED_AFTER
        if left > 0:
            self._head_timer = self.loop.call_later(left, self._head_timed_out)
        else:
            self._head_timed_out()

    def _head_timed_out(self) -> None:
        self._head_timer = None
        self._head_done()
        self._refuse(408)

    def _head_done(self) -> None:
        self._head_bytes = -1
        if self._head_timer is not None:
            self._head_timer.cancel()
            self._head_timer = None
        if self._stalled:
            self._stalled = False
            if self.heads is not None:
                self.heads.head_unstalled()

    def _refuse(self, status: int, retry_after: int | None = None) -> None:
        """Answer `status` and close; drop the connection if the peer has not taken it soon."""
        if self.on_refused is not None:
            self.on_refused(status)
        if self.penalty is not None and self.client:
            self.penalty.head_refused(status, self.client[0])
        transport = self.transport
        if transport.is_closing():
            return
        cycle = self.cycle
        if cycle is None or cycle.response_complete:  # never in the middle of a response
            if retry_after is None:
                transport.write(_REFUSALS[status])
            else:
                transport.write(_response(status, "Too Many Requests", retry_after=retry_after))
        transport.close()
        if transport.get_write_buffer_size():
            self.loop.call_later(self.close_bound, transport.abort)


class Doorman(asyncio.Protocol):
    """A public connection's first protocol, where the peer is the client: a penalised address
    gets 429 and `Retry-After` at once; any other connection is handed to the HTTP protocol.

    uvicorn builds its protocol for every connection (a parser, a flow control, two loggers
    looked up, the addresses read: tens of microseconds); an attacker refused at once comes
    back at once, and at thousands a second that cost was the pod's main work.
    """

    __slots__ = ("_kwargs",)

    #: the protocol a connection let in gets (`before`)
    protocol: Callable[..., asyncio.Protocol]
    penalty: Penalty
    on_refused: Callable[[int], None] | None = None
    close_bound = 5.0

    def __init__(self, **kwargs: Any) -> None:
        self._kwargs = kwargs  # uvicorn's (config, server_state, app_state), for `protocol`

    @classmethod
    def before(
        cls,
        protocol: type[GuardedHTTP],
        *,
        penalty: Penalty,
        on_refused: Callable[[int], None] | None = None,
    ) -> type[Doorman]:
        """This class in front of `protocol` (uvicorn instantiates the class it is given)."""
        attrs: dict[str, Any] = {
            "protocol": protocol,
            "penalty": penalty,
            "close_bound": protocol.close_bound,
            "on_refused": None if on_refused is None else staticmethod(on_refused),
            "__slots__": (),
        }
        return type(cls.__name__, (cls,), attrs)

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # (uvloop's transports are not asyncio's classes: a cast, not an isinstance check)
        transport = cast(asyncio.Transport, transport)
        peer = transport.get_extra_info("peername")
        retry_after = self.penalty.refusal(peer[0]) if peer else None
        if retry_after is None:
            protocol = self.protocol(**self._kwargs)
            transport.set_protocol(protocol)
            protocol.connection_made(transport)
            return
        if self.on_refused is not None:
            self.on_refused(429)
        transport.write(_response(429, "Too Many Requests", retry_after=retry_after))
        transport.close()
        if transport.get_write_buffer_size():
            asyncio.get_running_loop().call_later(self.close_bound, transport.abort)
