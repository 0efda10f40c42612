"""The socket under a gateway connection: uvicorn's sans-I/O websocket protocol, extended.

uvicorn's ASGI `send` costs an awaited coroutine and a message dict per frame, about half of the
per-delivery CPU in our probe (15 us a delivery; a bare write costs 8). The fan-out writes pre-built
frames straight to the transport, synchronously, and never awaits a client. Handshake and close
still go through ASGI, so uvicorn keeps its bookkeeping. This is the only module that knows
uvicorn's internals; the ASGI scope carries the socket under `extensions["gamesync.socket"]`.

What a socket may cost is bounded whatever the client does (issue 12.2):
- backpressure both ways: while the transport's buffer is over its high-water mark the socket
  is not read either, so a client that does not read cannot make us write (pongs) or queue;
- at most one pong per read, and while unwritable only the newest one is kept (RFC 6455 §5.5.3
  lets a pong answer only the most recent ping), so a ping flood amplifies into nothing;
- every close, by either side, ends with the transport gone within `close_timeout` seconds: a
  peer that never reads (or never answers the close) is aborted, its buffer discarded;
- a handshake over websockets' parser limits (a line over 8 KiB, over 128 header fields) is
  answered with the parser's refusal (414 or 431) and closed, not left hanging;
- invalid UTF-8 in a text message closes 1007 quietly: a client's mistake, not our error;
- what a client sends besides whole messages is budgeted (issue 12, hostile clients): control
  frames (ping, pong) at `CONTROL_FRAMES_PER_SECOND` after a burst of `CONTROL_FRAMES_BURST`,
  and at most `MAX_FRAGMENTS` frames per message; beyond either, close 1008. A read is parsed
  `PARSE_SLICE` bytes at a time, so a flood costs at most one slice past its budget (a read
  can hold 256 KiB: two thousand pings);
- a read is parsed over as many loop turns as it takes: a turn parses at most
  `PARSE_SLICES_PER_TURN` slices, and none after a slice that gave the app a message, until the
  app has taken it. The rest waits, reading paused, so one read of many small messages (a
  subscribe flood) cannot hold the loop while every other connection waits.
"""

from __future__ import annotations

import asyncio
import os
from collections import deque
from collections.abc import Callable
from typing import Any, Protocol

from uvicorn.protocols.websockets.websockets_sansio_impl import WebSocketsSansIOProtocol
from websockets.protocol import State

from gamesync.framing import Framing

__all__ = ["CLOSE_TIMEOUT", "SCOPE_KEY", "GatewaySocket", "HeadPenalty"]

SCOPE_KEY = "gamesync.socket"

#: Seconds a closing socket may take to finish the closing handshake and flush before it is
#: aborted (the default of `--close-timeout`).
CLOSE_TIMEOUT = 5.0

#: First byte of a server's unmasked, final pong frame (RFC 6455 §5.2: FIN + opcode 0xA).
_PONG = b"\x8a"

#: Control frames a client may send in a burst, then per second: a client library pings every
#: few seconds at most and pongs each of our pings; a flood is thousands a second, each parsed.
CONTROL_FRAMES_BURST = 50
CONTROL_FRAMES_PER_SECOND = 5.0
#: Frames one message may be split into: clients send a message as one frame (a browser
#: always does); a 4 KiB message in 1-byte fragments is 4,096 frames to parse.
MAX_FRAGMENTS = 64
#: Bytes of a read handed to the frame parser at once, the budgets checked in between: 512
#: bytes are at most 73 of the smallest frames (7 bytes). With 4 KiB (585 such frames) the
#: parsing of slices was 30 % of the pod's CPU under the hostile-clients scenario.
PARSE_SLICE = 512
#: Slices one socket may parse in one turn of the event loop, messages or not (4 KiB of
#: control frames or fragments, each kind budgeted anyway).
PARSE_SLICES_PER_TURN = 8


class HeadPenalty(Protocol):
    """Where a request head refused before any session counts (`gamesync.abuse.AbusePenalty`)."""

    def head_refused(self, status: int, peer: str) -> None:
        """A head from `peer` was refused with `status`."""


class _Inbox:
    """The ASGI receive queue, minus what asyncio.Queue carries for features nobody uses here.

    uvicorn keeps one asyncio.Queue per socket (with its own Event and three deques); at tens of
    thousands of idle sockets that is ~2 KB each. One consumer awaits at a time, so one waiter
    future does, and the deque exists only while messages wait in it: CPython gives every deque
    a 64-slot block, ~0.7 KiB, which an idle connection would otherwise carry for nothing.
    """

    __slots__ = ("_items", "_waiter")

    def __init__(self) -> None:
        self._items: deque[Any] | None = None
        self._waiter: asyncio.Future[None] | None = None

    def put_nowait(self, item: Any) -> None:
        if self._items is None:
            self._items = deque()
        self._items.append(item)
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    async def get(self) -> Any:
        while not self._items:
            self._waiter = asyncio.get_running_loop().create_future()
            try:
                await self._waiter
            finally:
                self._waiter = None
        items = self._items
        item = items.popleft()
        if not items:
            self._items = None
        return item

    def empty(self) -> bool:
        return not self._items


class _Writable:
    """The `asyncio.Event` uvicorn keeps per socket for its ASGI `send` to await writability,
    with no waiter deque until something waits (an Event makes one at once: ~0.7 KiB of every
    idle connection, and our fan-out never awaits it)."""

    __slots__ = ("_value", "_waiters")

    def __init__(self) -> None:
        self._value = True  # uvicorn sets it right after making it
        self._waiters: list[asyncio.Future[bool]] | None = None

    def is_set(self) -> bool:
        return self._value

    def set(self) -> None:
        if self._value:
            return
        self._value = True
        waiters, self._waiters = self._waiters, None
        for waiter in waiters or ():
            if not waiter.done():
                waiter.set_result(True)

    def clear(self) -> None:
        self._value = False

    async def wait(self) -> bool:
        if self._value:
            return True
        waiter: asyncio.Future[bool] = asyncio.get_running_loop().create_future()
        if self._waiters is None:
            self._waiters = []
        self._waiters.append(waiter)
        try:
            return await waiter
        finally:
            if self._waiters is not None and waiter in self._waiters:
                self._waiters.remove(waiter)


class GatewaySocket(WebSocketsSansIOProtocol):
    """A websocket that reports liveness and writability, and accepts pre-framed writes."""

    framing = Framing.WEBSOCKET
    # Class-level defaults: an idle socket's instance dict carries them only once they are set.
    #: seconds from the start of a close until the transport is aborted (`configured`)
    close_bound = CLOSE_TIMEOUT
    #: called once the transport is gone (the registry counts lingering sockets until then)
    on_gone: Callable[[], None] | None = None
    #: the newest pong owed while the socket was unwritable (written once it drains)
    _owed_pong: bytes | None = None
    #: called with the HTTP status of a handshake refused before the app saw it (`configured`)
    on_refused: Callable[[int], None] | None = None
    #: control frames the client may still send now, and when that was last topped up
    _control_tokens = float(CONTROL_FRAMES_BURST)
    _control_at = 0.0
    #: closed over a budget: read nothing more
    _over = False
    #: the close code with which this socket itself ended the connection for what the client
    #: sent (1008 over a budget; 1002, 1007, 1009 from the parser), if it did
    ended_for: int | None = None
    #: counts a handshake refused for its size against the peer (`gamesync.abuse`; `configured`)
    penalty: HeadPenalty | None = None
    #: read but not parsed yet (reading is paused until it is), and the turn that parses on
    _unparsed: bytes | memoryview = b""
    _parse_later: asyncio.Handle | None = None
    #: writes one complete, unmasked server frame: the transport's own `write` once connected
    #: (no Python call between the fan-out and the transport; a connection keeps it bound)
    write_frame: Callable[[bytes], None]
    unwritable_since: float | None = None

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.queue = _Inbox()  # type: ignore[assignment]
        self.writable = _Writable()  # type: ignore[assignment]
        self.last_seen = self.loop.time()
        self.unwritable_since: float | None = None
        self.on_writable: Callable[[], None] | None = None

    @classmethod
    def configured(
        cls,
        *,
        close_timeout: float,
        on_refused: Callable[[int], None] | None = None,
        penalty: HeadPenalty | None = None,
    ) -> type[GatewaySocket]:
        """This class with its close bound, refusal counter and abuse penalty set (uvicorn
        instantiates the class it is given)."""
        attrs: dict[str, Any] = {"close_bound": close_timeout, "penalty": penalty}
        if on_refused is not None:
            attrs["on_refused"] = staticmethod(on_refused)
        return type(cls.__name__, (cls,), attrs)

    # uvicorn callbacks -------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        super().connection_made(transport)
        self.write_frame = self.transport.write

    def handle_connect(self, event: Any) -> None:
        super().handle_connect(event)
        scope = getattr(self, "scope", None)
        if scope is not None:  # None when the handshake itself was refused
            scope["extensions"][SCOPE_KEY] = self

    def data_received(self, data: bytes) -> None:
        # Any frame from the client is a sign of life (DESIGN §2, heartbeats).
        if self._over:
            return  # closed over a budget: the rest is not parsed
        self.last_seen = self.loop.time()
        if not self.handshake_complete:
            super().data_received(data)
            if not self.handshake_initiated and self.conn.handshake_exc is not None:
                self._refuse_handshake()
            self._update_can_write()
            return
        self._unparsed = bytes(self._unparsed) + data if self._unparsed else data
        self._parse_some()

    def _held(self) -> bool:
        """Parse nothing more for now: a message waits for the app, the socket is unwritable
        (backpressure both ways; a closing socket reads on for the peer's close), or over a
        budget."""
        return (
            self.read_paused
            or self._over
            or (self.unwritable_since is not None and not self.close_sent)
        )

    def _parse_some(self) -> None:
        """Parse this turn's share of what was read; leave the rest, reading paused, for a
        later turn (the next one, or once the app has taken its message or the socket drained)."""
        self._parse_later = None
        data = self._unparsed
        transport = self.transport
        start = 0
        for _ in range(PARSE_SLICES_PER_TURN):
            if start >= len(data) or self._held() or transport.is_closing():
                break
            chunk = data[start : start + PARSE_SLICE]
            start += PARSE_SLICE
            super().data_received(chunk if isinstance(chunk, bytes) else bytes(chunk))
        self._update_can_write()  # a close frame parsed: websockets' state changed
        if start >= len(data) or self._over or transport.is_closing():
            self._unparsed = b""
            if not self._held() and not transport.is_closing():
                transport.resume_reading()  # (a no-op unless a rest had paused it)
            return
        self._unparsed = memoryview(data)[start:]
        transport.pause_reading()
        if not self._held():  # the turn's budget spent: go on next turn
            self._parse_later = self.loop.call_soon(self._parse_some)

    def _read_on(self) -> None:
        """Go on reading: parse the rest on the next turn first, if there is one."""
        if not self._unparsed:
            self.transport.resume_reading()
        elif self._parse_later is None:
            self._parse_later = self.loop.call_soon(self._parse_some)

    def _refuse_handshake(self) -> None:
        """Send the refusal websockets' parser queued for a request over its limits, and close.

        uvicorn only writes responses for requests that parsed; for a request line or header
        line over 8 KiB, or too many header fields, the parser queues a 414 or 431 and waits.
        """
        data = b"".join(self.conn.data_to_send())  # the response, then b"" (its EOF)
        self.handshake_initiated = self.handshake_complete = self.close_sent = True
        if data and not self.transport.is_closing():
            self.transport.write(data)
        self._let_go()
        # "HTTP/1.1 431 ...": nothing but a close (0) when the request did not parse at all
        digits = data[9:12]
        status = int(digits) if data.startswith(b"HTTP/") and digits.isdigit() else 0
        if self.on_refused is not None:
            self.on_refused(status)
        if self.penalty is not None and self.client:
            self.penalty.head_refused(status, self.client[0])

    def pause_writing(self) -> None:
        super().pause_writing()
        self.unwritable_since = self.loop.time()
        self.can_write = False
        # Backpressure both ways: a client that does not read gets nothing more read either.
        self.transport.pause_reading()

    def resume_writing(self) -> None:
        super().resume_writing()
        self.unwritable_since = None
        self._update_can_write()
        pong, self._owed_pong = self._owed_pong, None
        if pong is not None and not self.transport.is_closing():
            self.transport.write(pong)
        if not self.read_paused and not self._over:  # (read_paused: uvicorn's flag, the app
            self._read_on()  # has not read the last message yet)
        if self.on_writable is not None:
            self.on_writable()

    def connection_lost(self, exc: Exception | None) -> None:
        super().connection_lost(exc)
        # The scope names this socket and this socket holds the scope: a reference cycle that
        # only the cyclic collector would free, ~50 objects a connection (its websockets
        # protocol, buffers, frames). Under churn (a storm, an attack) that garbage triggered
        # full collections of every live connection's objects: 80 ms pauses. Once the
        # transport is gone nothing looks the socket up in the scope any more (the endpoint
        # took it at connect), so reference counting frees it all here.
        scope = getattr(self, "scope", None)
        if scope is not None:
            scope["extensions"].pop(SCOPE_KEY, None)
        self.unwritable_since = None  # (`disconnected` is set: `can_write` stays False)
        self._owed_pong = None
        self._unparsed = b""
        if self._parse_later is not None:
            self._parse_later.cancel()
            self._parse_later = None
        on_gone, self.on_gone = self.on_gone, None
        if on_gone is not None:
            on_gone()

    async def receive(self) -> Any:
        message = await self.queue.get()
        if self.read_paused and self.queue.empty():
            self.read_paused = False
            # (unwritable: resume_writing resumes reading; over a budget: never again)
            if self.unwritable_since is None and not self._over:
                self._read_on()
        return message

    def _over_budget(self, reason: str) -> None:
        """Close 1008: the client sends frames beyond its budget (module docstring).

        Nothing more is read or parsed, but the socket is not closed before the client closes
        or the close bound passes: closing a socket with unread bytes resets it, and the
        client would never see why it was closed.
        """
        self._over = True
        self.ended_for = 1008
        self.conn.send_close(1008, reason)  # protocol.Close.POLICY (this layer is below it)
        self.queue.put_nowait({"type": "websocket.disconnect", "code": 1008, "reason": reason})
        self.transport.write(b"".join(self.conn.data_to_send()))
        self.close_sent = True
        self.transport.pause_reading()
        if self.close_timer is not None:
            self.close_timer.cancel()
        self.close_timer = self.loop.call_later(self.close_bound, self.transport.abort)

    def _spend_control_frame(self) -> bool:
        """Take one control frame from the budget; False (and closed) when there is none."""
        now = self.loop.time()
        tokens = min(
            float(CONTROL_FRAMES_BURST),
            self._control_tokens + (now - self._control_at) * CONTROL_FRAMES_PER_SECOND,
        )
        self._control_at = now
        if tokens < 1.0:
            self._control_tokens = tokens
            self._over_budget("too many control frames")
            return False
        self._control_tokens = tokens - 1.0
        return True

    def handle_cont(self, event: Any) -> None:
        if self.close_sent:
            return
        if len(self.frames) >= MAX_FRAGMENTS:
            self._over_budget("too many fragments")
            return
        super().handle_cont(event)

    def handle_pong(self, event: Any) -> None:
        if not self.close_sent and self._spend_control_frame():
            super().handle_pong(event)

    def handle_ping(self) -> None:
        if self.close_sent or not self._spend_control_frame():
            self.conn.data_to_send()  # the pong websockets queued: never sent
            return
        # websockets queued a pong for every ping parsed from this read: write the newest only
        # (RFC 6455 §5.5.3), and while unwritable keep it for later instead. Other frames
        # (a close echo parsed from the same read) are written as they are.
        output = self.conn.data_to_send()
        pong = None
        rest = []
        for chunk in output:
            if chunk[:1] == _PONG:
                pong = chunk
            else:
                rest.append(chunk)
        if self.transport.is_closing():
            return
        if self.unwritable_since is not None:
            if pong is not None:
                self._owed_pong = pong
            pong = None
        data = b"".join(rest) if pong is None else b"".join((*rest, pong))
        if data:
            self.transport.write(data)

    def handle_close(self, event: Any) -> None:
        if self.close_sent:
            # The peer answered our close frame: the closing handshake is complete.
            self._let_go()
            return
        if not self.transport.is_closing():
            assert self.conn.close_rcvd is not None
            code = self.conn.close_rcvd.code
            reason = self.conn.close_rcvd.reason
            self.queue.put_nowait({"type": "websocket.disconnect", "code": code, "reason": reason})
            self.transport.write(b"".join(self.conn.data_to_send()))
            self._let_go()

    def send_receive_event_to_app(self) -> None:
        # uvicorn's, but invalid UTF-8 is a client's fault: close 1007 without logging an
        # error with a traceback (any client could fill the log with them).
        frames, self.frames = self.frames, []
        if self.close_sent:
            return  # past our close: read on for the peer's answer, discard the message
        data = frames[0] if len(frames) == 1 else b"".join(frames)
        if self.curr_msg_data_type == "text":
            try:
                text = data.decode()
            except UnicodeDecodeError:
                self.conn.send_close(1007, "invalid UTF-8")  # protocol.Close.INVALID_DATA
                self.handle_parser_exception()
                return
            self.queue.put_nowait({"type": "websocket.receive", "text": text})
        else:
            self.queue.put_nowait({"type": "websocket.receive", "bytes": data})
        if not self.read_paused:
            self.read_paused = True
            self.transport.pause_reading()

    def handle_parser_exception(self) -> None:
        # A frame too large, bad UTF-8 or a protocol violation: websockets queued the close.
        sent = self.conn.close_sent
        self.ended_for = None if sent is None else sent.code
        super().handle_parser_exception()
        self._let_go()

    def _let_go(self) -> None:
        """Close the transport; abort it if its buffer has not drained within the close bound.

        asyncio's `close()` waits for the buffer to drain, forever if the peer never reads.
        """
        if self.close_timer is not None:
            self.close_timer.cancel()
            self.close_timer = None
        transport = self.transport
        transport.close()
        if transport.get_write_buffer_size():
            self.close_timer = self.loop.call_later(self.close_bound, transport.abort)

    async def send(self, message: Any) -> None:
        await super().send(message)
        self._update_can_write()  # an accept opens websockets' state after `handshake_complete`
        if message["type"] == "websocket.accept":
            # The handshake's headers are never read again; at ~4 KB a socket they are most of
            # an idle connection's memory. (websockets' parser still holds the Request object,
            # so its headers are emptied in place rather than just dropped here.)
            self.request.headers.clear()
            self.response.headers.clear()
            self.request = None  # type: ignore[assignment]
            self.response = None  # type: ignore[assignment]
        elif message["type"] == "websocket.http.response.body" and not message.get("more_body"):
            # A refusal sent through the websocket.http.response extension is a finished
            # handshake; without this uvicorn logs "returned without completing handshake".
            self.handshake_complete = True

    # what the gateway uses ---------------------------------------------------------------

    @property
    def is_open(self) -> bool:
        """Data frames may be written: handshake done, no close sent or received."""
        return (
            self.handshake_complete
            and not self.close_sent
            and not self.disconnected
            and self.conn.state is State.OPEN
        )

    # The fan-out's fast path (issue 14): `can_write` is read once per frame, so it is a plain
    # attribute, kept equal to `unwritable_since is None and is_open` by everything that changes
    # one of those: uvicorn's three flags (through the setters below, wherever uvicorn sets
    # them), websockets' state (it changes as the accept is sent, as a read is parsed, with a
    # close sent, which sets `close_sent` too, and at shutdown) and the transport's pause and
    # resume.
    #: open and the transport's buffer below its high-water mark
    can_write = False
    _handshake_complete = False
    _close_sent = False
    _disconnected = False

    def _update_can_write(self) -> None:
        self.can_write = self.unwritable_since is None and self.is_open

    @property
    def handshake_complete(self) -> bool:
        return self._handshake_complete

    @handshake_complete.setter
    def handshake_complete(self, value: bool) -> None:
        self._handshake_complete = value
        self._update_can_write()

    @property
    def close_sent(self) -> bool:
        return self._close_sent

    @close_sent.setter
    def close_sent(self, value: bool) -> None:
        self._close_sent = value
        self._update_can_write()

    @property
    def disconnected(self) -> bool:
        return self._disconnected

    @disconnected.setter
    def disconnected(self, value: bool) -> None:
        self._disconnected = value
        self._update_can_write()

    def shutdown(self) -> None:
        super().shutdown()  # sends a close (1012) without setting `close_sent`
        self._update_can_write()

    @property
    def is_gone(self) -> bool:
        """The transport is closed and released (no buffer held any more)."""
        return self.disconnected

    def send_ping(self) -> None:
        """Send a ping control frame; the pong (or any frame) refreshes `last_seen`."""
        if self.is_open:
            self.conn.send_ping(os.urandom(4))
            self.transport.write(b"".join(self.conn.data_to_send()))

    def abort(self) -> None:
        """Drop the connection now, buffer and all (the app's receive() sees a disconnect)."""
        if self.transport is not None:
            self.transport.abort()

    def close_now(self, code: int, reason: str = "", *, abort_after: float | None = None) -> bool:
        """Start the closing handshake at once, even while the buffer is full.

        ASGI's `websocket.close` first waits for the socket to become writable, which a client
        that stopped reading never lets happen. The app's receive() then sees a disconnect.
        The transport is dropped (buffer discarded) if the peer has not completed the handshake
        within `abort_after` seconds (default: the close bound). Returns False, and does
        nothing, if a close was already sent or received or the socket is gone.
        """
        if (
            self.close_sent
            or self.disconnected
            or not self.handshake_complete
            or self.conn.state is not State.OPEN  # the peer's close was processed already
            or self.transport.is_closing()
        ):
            return False
        self.queue.put_nowait({"type": "websocket.disconnect", "code": code, "reason": reason})
        self.conn.send_close(code, reason)
        self.transport.write(b"".join(self.conn.data_to_send()))
        self.close_sent = True
        if self.read_paused:
            self.read_paused = False
        # Read on, writable or not, to see the peer's answer; a pong owed meanwhile is conflated.
        self._read_on()
        if self.close_timer is not None:
            self.close_timer.cancel()
        delay = self.close_bound if abort_after is None else min(abort_after, self.close_bound)
        self.close_timer = self.loop.call_later(delay, self.transport.abort)
        return True
