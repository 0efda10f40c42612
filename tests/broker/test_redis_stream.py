"""The pub/sub stream: every complete reply of a socket read handed on at once, in order.

The tests against a real Redis run on both event loops: asyncio's, and uvloop's (what the gateway
runs), whose transports (TCP and TLS) the stream takes over with `set_protocol`.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Callable, Coroutine
from typing import Any

import pytest
import redis.asyncio as aioredis
from pods import envelope, eventually

from gamesync.broker import create_broker
from gamesync.broker.redis.pubsub import RedisBroker
from gamesync.broker.redis.stream import PubSubStream, ReplyError, pack_command
from gamesync.envelope import Envelope
from redis_servers import RedisServer

LOOPS = ["asyncio", "uvloop"]


def run_on(loop: str, main: Coroutine[Any, Any, None]) -> None:
    """Run `main` to completion on a fresh event loop of the kind named."""
    if loop == "uvloop":
        import uvloop

        uvloop.run(main)
    else:
        asyncio.run(main)


def message(channel: bytes, data: bytes) -> bytes:
    return b"*3\r\n$7\r\nmessage\r\n" + b"".join(
        b"$%d\r\n%s\r\n" % (len(part), part) for part in (channel, data)
    )


async def test_every_complete_reply_of_a_read_is_handed_on_in_one_call() -> None:
    batches: list[list[Any]] = []
    stream = PubSubStream(batches.append)
    wire = b"".join(message(b"game:{1}", b"v%d" % i) for i in range(3)) + message(b"x", b"tail")
    stream.data_received(wire[:-5])  # three replies and most of a fourth
    stream.data_received(wire[-5:])
    stream.data_received(b"-ERR something\r\n")
    assert [[r[2] for r in batch] for batch in batches[:2]] == [[b"v0", b"v1", b"v2"], [b"tail"]]
    [[error]] = batches[2:]
    assert isinstance(error, ReplyError)
    assert not stream.closed.done()


async def test_an_invalid_reply_ends_the_connection_with_a_reason() -> None:
    stream = PubSubStream(lambda replies: None)
    stream.data_received(b"!nonsense\r\n")
    assert stream.closed.done()
    assert "invalid reply from redis" in stream.closed.result()


async def test_a_handler_that_raises_ends_the_connection_not_the_loop(
    caplog: pytest.LogCaptureFixture,
) -> None:
    def broken(replies: list[Any]) -> None:
        raise RuntimeError("bug")

    stream = PubSubStream(broken)
    stream.data_received(message(b"game:{1}", b"x"))
    assert stream.closed.result() == "pub/sub reply handler failed"
    assert "pub/sub reply handler failed; reconnecting" in caplog.text


def test_commands_are_packed_as_arrays_of_bulk_strings() -> None:
    assert pack_command(b"SUBSCRIBE", b"game:{1}") == (
        b"*2\r\n$9\r\nSUBSCRIBE\r\n$8\r\ngame:{1}\r\n"
    )


@pytest.mark.redis
@pytest.mark.parametrize("loop", LOOPS)
def test_a_burst_reaches_the_handler_in_order_from_fewer_reads_than_messages(
    redis_server: RedisServer, monkeypatch: pytest.MonkeyPatch, loop: str
) -> None:
    reads = 0
    original = PubSubStream.data_received

    def counting(self: PubSubStream, data: bytes) -> None:
        nonlocal reads
        reads += 1
        original(self, data)

    monkeypatch.setattr(PubSubStream, "data_received", counting)
    run_on(loop, burst(redis_server, lambda: reads))


async def burst(redis_server: RedisServer, reads: Callable[[], int]) -> None:
    broker = create_broker(redis_server.url, latest_ttl_seconds=60)
    assert isinstance(broker, RedisBroker)
    received: list[Envelope] = []
    await broker.start(received.append)
    publisher = aioredis.Redis(port=redis_server.port, protocol=2)
    try:
        await eventually(lambda: broker.ready)
        await broker.subscribe(901)
        before = reads()
        async with publisher.pipeline(transaction=False) as pipe:
            for version in range(1, 501):  # one write: Redis sends the messages back to back
                pipe.publish("game:{901}", json.dumps(envelope(901, version)))
            await pipe.execute()
        await eventually(lambda: len(received) == 500, what="all 500 envelopes")
        assert [e.version for e in received] == list(range(1, 501))
        assert reads() - before < 500  # several messages per read: batched, not one wake-up each
        assert broker.stats.received == 500
    finally:
        await publisher.aclose()
        await broker.stop()


@pytest.mark.redis
@pytest.mark.parametrize("loop", LOOPS)
def test_a_connection_that_redis_drops_is_rebuilt_and_resubscribed(
    redis_server: RedisServer, caplog: pytest.LogCaptureFixture, loop: str
) -> None:
    caplog.set_level(logging.INFO, logger="gamesync")
    run_on(loop, dropped(redis_server))
    assert "redis closed the connection" in caplog.text


async def dropped(redis_server: RedisServer) -> None:
    broker = create_broker(
        f"{redis_server.url}?probe_interval=0.3&reconnect_base=0.05&reconnect_cap=0.3",
        latest_ttl_seconds=60,
    )
    assert isinstance(broker, RedisBroker)
    received: list[Envelope] = []
    await broker.start(received.append)
    admin = redis_server.client()
    try:
        await eventually(lambda: broker.ready)
        await broker.subscribe(902)
        [link] = broker._links.values()
        first = link.stream
        admin.client_kill_filter(_type="pubsub")
        await eventually(lambda: broker.ready and link.stream is not first, what="a new stream")
        await eventually(lambda: 902 in broker.confirmed_games)
        admin.publish("game:{902}", json.dumps(envelope(902, 1)))
        await eventually(lambda: [e.version for e in received] == [1], what="delivery")
        assert first is not None
        assert first.closed.done()
    finally:
        await broker.stop()
        admin.close()


@pytest.mark.redis
@pytest.mark.parametrize("loop", LOOPS)
def test_the_stream_reads_a_tls_connection_too(loop: str) -> None:
    run_on(loop, over_tls())


async def over_tls() -> None:
    server = RedisServer(tls=True).start()
    broker = create_broker(server.url, latest_ttl_seconds=60)
    received: list[Envelope] = []
    await broker.start(received.append)
    try:
        await eventually(lambda: broker.ready, what="ready over TLS")
        await broker.subscribe(903)
        admin = server.client()
        try:
            for version in (1, 2, 3):
                admin.publish("game:{903}", json.dumps(envelope(903, version)))
        finally:
            admin.close()
        await eventually(lambda: [e.version for e in received] == [1, 2, 3], what="delivery")
    finally:
        await broker.stop()
        server.stop()
