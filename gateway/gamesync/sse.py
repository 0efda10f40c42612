"""The socket under an SSE connection: one streamed HTTP/1.1 response, written to directly.

Server-Sent Events are the fallback for networks that break websockets (DESIGN §2). The
stream is a `connection.Socket` like a websocket, so the hub, the registry, the sweeper and
the drain serve it the same way: pre-framed writes straight to the transport (no awaited ASGI
`send` per message), writability from the transport's flow control, a close bound.

uvicorn's HTTP protocol is extended (`GatewayHTTP`) only to hand the stream its transport and to
tell it when writing pauses, resumes or the connection is lost. The response starts through
ASGI (so uvicorn keeps its bookkeeping); after that the body is written here as HTTP/1.1 chunks
(`gamesync.framing`): one `data:` event per message, `:` comments as heartbeats. The stream ends
with a `close` event carrying a websocket close code (what the client does next is the same
for both transports) and the last chunk; then the connection is closed, and aborted if the
client has not taken the bytes within the close bound.

Clients cannot send anything on the stream, so a heartbeat is a comment the server writes, and
a client that stopped reading is found by the slow-client check (the transport's buffer stays
full), one that vanished by TCP.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, MutableMapping
from typing import Any

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol, RequestResponseCycle

from gamesync.framing import Framing, frame, sse_comment, sse_end
from gamesync.protocol import encode
from gamesync.transport import CLOSE_TIMEOUT

__all__ = ["SCOPE_KEY", "GatewayHTTP", "SseStream"]

#: `scope["extensions"][SCOPE_KEY]`: what `SseStream.open` needs from the request's protocol.
SCOPE_KEY = "gamesync.http"

#: The close code a stream records when the client hung up (no close code exists in HTTP):
#: "going away", the code of a browser leaving a page.
HUNG_UP = 1001

_HEARTBEAT = sse_comment()


class GatewayHTTP(HttpToolsProtocol):
    """uvicorn's HTTP protocol, telling an SSE stream about writability and connection loss."""

    #: seconds from the start of a close until the transport is aborted (`configured`)
    close_bound = CLOSE_TIMEOUT
    #: the stream this connection serves, once an SSE request started one
    stream: SseStream | None = None

    @classmethod
    def configured(cls, *, close_timeout: float) -> type[GatewayHTTP]:
        """This class with its close bound set (uvicorn instantiates the class it is given)."""
        return type(cls.__name__, (cls,), {"close_bound": close_timeout})

    def on_headers_complete(self) -> None:
        super().on_headers_complete()
        cycle = self.cycle
        if cycle is not None and cycle.scope is self.scope:  # not a websocket upgrade
            extensions: dict[str, Any] = {SCOPE_KEY: (self, cycle)}
            self.scope["extensions"] = extensions

    def pause_writing(self) -> None:
        super().pause_writing()
        if self.stream is not None:
            self.stream.writing_paused()

    def resume_writing(self) -> None:
        super().resume_writing()
        if self.stream is not None:
            self.stream.writing_resumed()

    def connection_lost(self, exc: Exception | None) -> None:
        super().connection_lost(exc)
        stream, self.stream = self.stream, None
        if stream is not None:
            stream.lost()
        # The scope's extension holds this protocol, which holds the scope: break the cycle
        # (see `GatewaySocket.connection_lost`) now that nothing will look it up.
        scope = getattr(self, "scope", None)
        if scope is not None:
            scope.get("extensions", {}).pop(SCOPE_KEY, None)

    def handle_websocket_upgrade(self) -> None:
        super().handle_websocket_upgrade()
        # The transport belongs to the websocket protocol now, and this one is never called
        # again; its HTTP parser holds its bound callbacks (a cycle uvicorn breaks only in
        # `connection_lost`, which an upgraded connection never calls here).
        self.parser = None  # type: ignore[assignment]


class SseStream:
    """One SSE response as a `connection.Socket`: pre-framed writes, heartbeats, a bounded close."""

    framing = Framing.SSE

    __slots__ = (
        "_close_timer",
        "_closed",
        "_cycle",
        "_gone",
        "_protocol",
        "_started",
        "last_seen",
        "loop",
        "on_gone",
        "on_writable",
        "unwritable_since",
    )

    def __init__(self, protocol: GatewayHTTP, cycle: RequestResponseCycle) -> None:
        self._protocol = protocol
        self._cycle = cycle
        self.loop = protocol.loop
        self.last_seen = self.loop.time()
        self.unwritable_since: float | None = None
        self.on_writable: Callable[[], None] | None = None
        self.on_gone: Callable[[], None] | None = None
        self._started = False
        self._gone = False
        #: set once the stream ends, by either side (what the session waits on)
        self._closed = asyncio.Event()
        self._close_timer: asyncio.TimerHandle | None = None

    @classmethod
    def open(cls, scope: MutableMapping[str, Any]) -> SseStream | None:
        """The stream for this request, or None if it was not served by `GatewayHTTP`."""
        found = scope.get("extensions", {}).get(SCOPE_KEY)
        if not isinstance(found, tuple) or not isinstance(found[0], GatewayHTTP):
            return None
        protocol, cycle = found
        if protocol.stream is not None or protocol.cycle is not cycle:
            return None  # pipelined behind another request: not ours to take over
        stream = cls(protocol, cycle)
        protocol.stream = stream
        return stream

    async def start(self, send: Any, headers: list[tuple[bytes, bytes]]) -> None:
        """Send the response head through ASGI; the body is written directly from then on."""
        await send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": [
                    (b"content-type", b"text/event-stream; charset=utf-8"),
                    (b"cache-control", b"no-store"),
                    # nginx buffers proxied responses unless told not to (its X-Accel-Buffering).
                    (b"x-accel-buffering", b"no"),
                    (b"transfer-encoding", b"chunked"),
                    (b"connection", b"close"),
                    *headers,
                ],
            }
        )
        self._started = True
        if self._protocol.flow.write_paused:
            self.writing_paused()

    # what the protocol reports ------------------------------------------------------------

    def writing_paused(self) -> None:
        if self.unwritable_since is None:
            self.unwritable_since = self.loop.time()

    def writing_resumed(self) -> None:
        self.unwritable_since = None
        if self.on_writable is not None and self.is_open:
            self.on_writable()

    def lost(self) -> None:
        """The connection is gone: the stream holds no buffer any more."""
        self._gone = True
        self.unwritable_since = None
        if self._close_timer is not None:
            self._close_timer.cancel()
            self._close_timer = None
        self._closed.set()
        on_gone, self.on_gone = self.on_gone, None
        if on_gone is not None:
            on_gone()

    # connection.Socket ---------------------------------------------------------------------

    @property
    def is_open(self) -> bool:
        """Events may be written: the response started and the stream has not ended."""
        return self._started and not self._closed.is_set()

    @property
    def is_gone(self) -> bool:
        return self._gone

    @property
    def can_write(self) -> bool:
        return self.unwritable_since is None and self.is_open

    def write_frame(self, frame: bytes) -> None:
        """Write one complete, pre-framed event (an HTTP chunk)."""
        self._protocol.transport.write(frame)

    def send_ping(self) -> None:
        """A comment as heartbeat. The client cannot answer, so writing it counts as life."""
        if self.is_open:
            self._protocol.transport.write(_HEARTBEAT)
            self.last_seen = self.loop.time()

    def close_now(self, code: int, reason: str = "", *, abort_after: float | None = None) -> bool:
        """End the stream at once: a `close` event with the code, the last chunk, then close.

        The connection is aborted (buffer discarded) if the client has not taken it within
        `abort_after` seconds (default: the close bound). False if the stream already ended.
        """
        if self._closed.is_set() or self._gone:
            return False
        self._closed.set()
        if self._started:
            last = frame(Framing.SSE, encode("close", code=code, reason=reason))
            self._protocol.transport.write(last + sse_end())
        self._end_response()
        bound = self._protocol.close_bound
        delay = bound if abort_after is None else min(abort_after, bound)
        transport = self._protocol.transport
        transport.close()
        if not self._gone:
            self._close_timer = self.loop.call_later(delay, transport.abort)
        return True

    def abort(self) -> None:
        """Drop the connection now, buffer and all."""
        self._closed.set()
        self._end_response()
        self._protocol.transport.abort()

    # what the session uses ----------------------------------------------------------------

    async def wait_closed(self, timeout: float | None = None) -> bool:
        """Wait until the stream ended (either side); False if `timeout` passed first."""
        if timeout is None:
            await self._closed.wait()
            return True
        try:
            async with asyncio.timeout(timeout):
                await self._closed.wait()
        except TimeoutError:
            return False
        return True

    @property
    def ended_by_server(self) -> bool:
        """The server closed the stream (`close_now`), rather than the client leaving."""
        return self._closed.is_set() and not self._gone

    def finish(self) -> None:
        """The session is over: end the stream if nothing has yet (never leaves it open)."""
        if not self._closed.is_set() and not self._gone:
            self.close_now(1000, "")

    def _end_response(self) -> None:
        # uvicorn's cycle must see a complete response, or it logs an error when the app returns
        # and keeps the connection for another request; this response is the connection's last.
        cycle = self._cycle
        cycle.response_complete = True
        cycle.keep_alive = False
        cycle.message_event.set()
