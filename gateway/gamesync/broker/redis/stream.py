"""A pub/sub connection's socket, read in batches: the Redis half of the per-publish hot path.

redis-py opens the connection (TCP or TLS, AUTH, whatever the broker URL configures). Before
the first SUBSCRIBE, when nothing more can arrive, the link takes the connection's transport over
with asyncio's `set_protocol`: from then on each socket read goes to a `hiredis.Reader` in
`data_received`, and every complete reply of that read is handed on in one call. No task
wake-up, coroutine or future per message (redis-py's `read_response` costs all three, once per
message), and a read that holds twenty messages costs one callback, not twenty.

The callback is timed (`BrokerStats.receive_seconds`, two `perf_counter` reads per socket
read): on the gateway's single-threaded loop a synchronous callback's wall time is the CPU it
took, short of preemption by another process. The fan-outs' writes inside it (the hub adds
their time to `fanout_seconds`) are subtracted, so what remains is the receive path's own cost,
the part that game-affine placement divides among the pods (issue 14.4).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from time import perf_counter
from typing import Any, cast

import hiredis
from redis.asyncio.connection import Connection

from gamesync.broker.stats import BrokerStats

__all__ = ["PubSubStream", "ReplyError", "pack_command"]

log = logging.getLogger("gamesync.broker.redis")

#: An error reply (`-ERR ...`), handed on like any other reply, never raised.
ReplyError = hiredis.ReplyError

#: Called with every complete reply of one socket read, in order.
RepliesHandler = Callable[[list[Any]], None]


def pack_command(*args: bytes) -> bytes:
    """One command in RESP (an array of bulk strings)."""
    parts = [b"*%d\r\n" % len(args)]
    for arg in args:
        parts.append(b"$%d\r\n%s\r\n" % (len(arg), arg))
    return b"".join(parts)


class PubSubStream(asyncio.Protocol):
    """The socket of one pub/sub connection, after redis-py's handshake.

    `closed` resolves, with the reason, when the connection is lost for any reason: the server
    hung up, a protocol error, `abort()`. Replies are handed on from the event loop's callback,
    in order; a handler that raises ends the connection (logged), never the loop. The time
    spent reading, less the fan-outs within, is added to `stats.receive_seconds`.
    """

    def __init__(self, on_replies: RepliesHandler, stats: BrokerStats | None = None) -> None:
        self._reader = hiredis.Reader()
        self._on_replies = on_replies
        self._stats = stats if stats is not None else BrokerStats()
        self._transport: asyncio.Transport | None = None
        self.closed: asyncio.Future[str] = asyncio.get_running_loop().create_future()

    @classmethod
    def take_over(
        cls, conn: Connection, on_replies: RepliesHandler, stats: BrokerStats | None = None
    ) -> PubSubStream:
        """Read `conn`'s socket from now on; call before the first command is sent."""
        # redis-py keeps the transport only behind its private StreamWriter (redis-py is pinned;
        # tests/broker/test_redis.py checks that the stream is what reads the pub/sub socket).
        writer = conn._writer
        if writer is None:
            raise ConnectionError("redis connection closed before pub/sub started")
        transport = cast(asyncio.Transport, writer.transport)
        stream = cls(on_replies, stats)
        stream._transport = transport
        transport.set_protocol(stream)
        if transport.is_closing():
            stream.connection_lost(None)
        return stream

    def send(self, commands: list[tuple[bytes, ...]]) -> None:
        """Write commands in one write; a lost connection shows in `closed`, not here."""
        transport = self._transport
        if transport is not None and not transport.is_closing():
            transport.write(b"".join(pack_command(*command) for command in commands))

    def abort(self) -> None:
        """Drop the connection at once (the link then reconnects)."""
        if self._transport is not None:
            self._transport.abort()

    # asyncio.Protocol --------------------------------------------------------------------

    def data_received(self, data: bytes) -> None:
        started = perf_counter()
        stats = self._stats
        stats.reads += 1
        fanned_out = stats.fanout_seconds
        reader = self._reader
        reader.feed(data)
        replies = []
        try:
            while (reply := reader.gets()) is not False:
                replies.append(reply)
        except hiredis.ProtocolError as exc:
            self._fail(f"invalid reply from redis: {exc}")
        else:
            try:
                self._on_replies(replies)
            except Exception:  # a bug, never an outage: say so, and start over afresh
                log.exception("pub/sub reply handler failed; reconnecting")
                self._fail("pub/sub reply handler failed")
        stats.receive_seconds += perf_counter() - started - (stats.fanout_seconds - fanned_out)

    def eof_received(self) -> bool:
        return False  # close the transport: connection_lost follows

    def connection_lost(self, exc: Exception | None) -> None:
        self._transport = None
        if not self.closed.done():
            self.closed.set_result(
                f"connection to redis lost: {exc}" if exc else "redis closed the connection"
            )

    def _fail(self, reason: str) -> None:
        if not self.closed.done():
            self.closed.set_result(reason)
        self.abort()
