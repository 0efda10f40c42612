"""The socket under a gateway connection: uvicorn's sans-I/O websocket protocol, extended.

uvicorn's ASGI `send` costs an awaited coroutine and a message dict per frame, about half of the
per-delivery CPU in our probe (15 us a delivery; a bare write costs 8). The fan-out writes pre-built
frames straight to the transport, synchronously, and never awaits a client. Handshake and close
still go through ASGI, so uvicorn keeps its bookkeeping. This is the only module that knows
uvicorn's internals; the ASGI scope carries the socket under `extensions["gamesync.socket"]`.
"""

from __future__ import annotations

import asyncio
import os
from collections import deque
from collections.abc import Callable
from typing import Any

from uvicorn.protocols.websockets.websockets_sansio_impl import WebSocketsSansIOProtocol
from websockets.protocol import State

__all__ = ["SCOPE_KEY", "GatewaySocket"]

SCOPE_KEY = "gamesync.socket"


class _Inbox:
    """The ASGI receive queue, minus what asyncio.Queue carries for features nobody uses here.

    uvicorn keeps one asyncio.Queue per socket (with its own Event and three deques); at tens of
    thousands of idle sockets that is ~2 KB each. One consumer awaits at a time, so a deque and
    one waiter future do.
    """

    __slots__ = ("_items", "_waiter")

    def __init__(self) -> None:
        self._items: deque[Any] = deque()
        self._waiter: asyncio.Future[None] | None = None

    def put_nowait(self, item: Any) -> None:
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
        return self._items.popleft()

    def empty(self) -> bool:
        return not self._items


class GatewaySocket(WebSocketsSansIOProtocol):
    """A websocket that reports liveness and writability, and accepts pre-framed writes."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.queue = _Inbox()  # type: ignore[assignment]
        self.last_seen = self.loop.time()
        self.unwritable_since: float | None = None
        self.on_writable: Callable[[], None] | None = None

    # uvicorn callbacks -------------------------------------------------------------------

    def handle_connect(self, event: Any) -> None:
        super().handle_connect(event)
        scope = getattr(self, "scope", None)
        if scope is not None:  # None when the handshake itself was refused
            scope["extensions"][SCOPE_KEY] = self

    def data_received(self, data: bytes) -> None:
        # Any frame from the client is a sign of life (DESIGN §2, heartbeats).
        self.last_seen = self.loop.time()
        super().data_received(data)

    def pause_writing(self) -> None:
        super().pause_writing()
        self.unwritable_since = self.loop.time()

    def resume_writing(self) -> None:
        super().resume_writing()
        self.unwritable_since = None
        if self.on_writable is not None:
            self.on_writable()

    def connection_lost(self, exc: Exception | None) -> None:
        super().connection_lost(exc)
        self.unwritable_since = None

    async def send(self, message: Any) -> None:
        await super().send(message)
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

    @property
    def can_write(self) -> bool:
        """Open and the transport's buffer is below its high-water mark."""
        return self.unwritable_since is None and self.is_open

    def write_frame(self, frame: bytes) -> None:
        """Write one complete, unmasked server frame."""
        self.transport.write(frame)

    def send_ping(self) -> None:
        """Send a ping control frame; the pong (or any frame) refreshes `last_seen`."""
        if self.is_open:
            self.conn.send_ping(os.urandom(4))
            self.transport.write(b"".join(self.conn.data_to_send()))

    def close_now(self, code: int, reason: str = "", *, abort_after: float | None = None) -> bool:
        """Start the closing handshake at once, even while the buffer is full.

        ASGI's `websocket.close` first waits for the socket to become writable, which a client
        that stopped reading never lets happen. The app's receive() then sees a disconnect.
        With `abort_after`, the transport is dropped (buffer discarded) after that many
        seconds if the peer has not completed the handshake. Returns False if already closing.
        """
        if self.close_sent or self.disconnected or not self.handshake_complete:
            return False
        self.queue.put_nowait({"type": "websocket.disconnect", "code": code, "reason": reason})
        self.conn.send_close(code, reason)
        self.transport.write(b"".join(self.conn.data_to_send()))
        self.close_sent = True
        if self.read_paused:
            self.read_paused = False
            self.transport.resume_reading()
        if abort_after is None:
            self.close_timer = self.loop.call_later(self.close_timeout, self.transport.close)
        else:
            self.close_timer = self.loop.call_later(abort_after, self.transport.abort)
        return True
