"""The backend-side publisher (`gamesync.publisher`) and `gamesync publish --broker`, against a
real redis-server, with real `gamesync gateway` processes on the receiving end."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import re
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import redis.asyncio as aioredis
import websockets
from pods import Keys, envelope, eventually

from gamesync.envelope import parse_envelope
from gamesync.errors import BrokerUnavailable
from gamesync.publisher import Publisher, publish_sync
from redis_servers import RedisServer, TcpProxy

pytestmark = pytest.mark.redis

GAMESYNC = [sys.executable, "-m", "gamesync"]
TRACEPARENT = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"


async def listen(server: RedisServer, channel: str) -> tuple[aioredis.Redis, object]:
    client = aioredis.Redis(port=server.port, protocol=2)
    pubsub = client.pubsub()
    await pubsub.subscribe(channel)
    await pubsub.get_message(timeout=1)  # the subscribe confirmation
    return client, pubsub


async def test_publish_stores_and_fans_out_with_trace_context_untouched(
    redis_server: RedisServer,
) -> None:
    client, pubsub = await listen(redis_server, "game:{11}")
    try:
        async with Publisher(redis_server.url) as publisher:
            assert await publisher.publish(envelope(11, 1, traceparent=TRACEPARENT))
            assert not await publisher.publish(envelope(11, 1))
            assert publisher.stats.published == 1
            assert publisher.stats.stale == 1
        message = await pubsub.get_message(timeout=5)  # type: ignore[attr-defined]
        assert message is not None
        doc = json.loads(message["data"])
        assert doc["traceparent"] == TRACEPARENT
        assert abs(doc["publishedAt"] - time.time()) < 5  # stamped, since it had none
        assert await client.get("game:{11}:latest") == message["data"]
    finally:
        await pubsub.aclose()  # type: ignore[attr-defined]
        await client.aclose()


async def test_publish_keeps_given_bytes_and_publishedat(redis_server: RedisServer) -> None:
    raw = b'{"publishedAt": 12.5, "gameId": 12,"version":3,"snapshot":{"b":1,"a":2}}'
    async with Publisher(redis_server.url) as publisher:
        assert await publisher.publish(raw)
    assert redis_server.client().get("game:{12}:latest") == raw


async def test_publish_loads_the_script_again_after_a_script_flush(
    redis_server: RedisServer,
) -> None:
    async with Publisher(redis_server.url) as publisher:
        assert await publisher.publish(envelope(13, 1))
        redis_server.client().script_flush()
        assert await publisher.publish(envelope(13, 2))  # NOSCRIPT, then the body once
    assert parse_envelope(redis_server.client().get("game:{13}:latest") or b"").version == 2


async def test_publish_retries_then_counts_a_failure_when_redis_is_away(
    redis_server: RedisServer,
) -> None:
    url = redis_server.url
    redis_server.kill()
    async with Publisher(url, attempts=3, timeout=0.5) as publisher:
        started = time.monotonic()
        with pytest.raises(BrokerUnavailable):
            await publisher.publish(envelope(14, 1))
        assert time.monotonic() - started < 3  # short backoff, bounded
        assert publisher.stats.retries == 2
        assert publisher.stats.failures == 1


async def test_publish_nowait_never_blocks_and_conflates_per_game(
    redis_server: RedisServer, proxy_factory: object
) -> None:
    proxy: TcpProxy = await proxy_factory(redis_server.port)  # type: ignore[operator]
    proxy.cut()
    async with Publisher(proxy.url, timeout=0.3, queue_size=2) as publisher:
        started = time.monotonic()
        assert publisher.publish_nowait(envelope(15, 1))
        assert publisher.publish_nowait(envelope(15, 2))  # supersedes v1 if still queued
        assert publisher.publish_nowait(envelope(16, 1))
        assert not publisher.publish_nowait(envelope(17, 1))  # two games queued: full
        assert time.monotonic() - started < 0.05  # the caller's mutation never waits on Redis
        assert publisher.stats.dropped == 1
        assert not await publisher.flush(timeout=0.5)  # Redis is unreachable: still queued
        assert publisher.backlog().games == 2

        proxy.restore()
        for version in range(3, 50):
            publisher.publish_nowait(envelope(15, version))
        assert await publisher.flush(timeout=10)
        stored = redis_server.client().get("game:{15}:latest")
        assert parse_envelope(stored or b"").version == 49
        assert parse_envelope(redis_server.client().get("game:{16}:latest") or b"").version == 1
        assert publisher.stats.superseded >= 1


async def test_publish_nowait_retries_through_an_outage_until_every_game_converges(
    redis_server: RedisServer, caplog: pytest.LogCaptureFixture
) -> None:
    """Redis stopped for longer than the old queue's three attempts, then started again: every
    queued game's newest envelope goes out, with one warning for the whole outage."""
    caplog.set_level(logging.INFO, logger="gamesync.publisher")
    async with Publisher(redis_server.url, timeout=0.3) as publisher:
        assert await publisher.publish(envelope(19, 1))
        redis_server.kill()
        assert publisher.publish_nowait(envelope(19, 2))
        assert publisher.publish_nowait(envelope(20, 1))
        # The previous queue gave each envelope 3 attempts (2 retries), then dropped it.
        await eventually(lambda: publisher.stats.retries >= 6, what="retries past 3 attempts")
        backlog = publisher.backlog()
        assert backlog.games == 2
        assert backlog.oldest_seconds > 0
        assert publisher.publish_nowait(envelope(19, 3))  # committed while Redis is away
        assert publisher.backlog().games == 2  # still one entry per game: the newest

        redis_server.start()  # same port, empty
        assert await publisher.flush(timeout=15)
        assert publisher.backlog().games == 0
        assert publisher.backlog().oldest_seconds == 0.0
        assert publisher.stats.failures == 0  # the queue never gives up
    client = redis_server.client()
    assert parse_envelope(client.get("game:{19}:latest") or b"").version == 3
    assert parse_envelope(client.get("game:{20}:latest") or b"").version == 1
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1, [r.getMessage() for r in warnings]  # not one per retry
    assert "retrying with backoff" in warnings[0].getMessage()
    assert any("publishing again" in r.getMessage() for r in caplog.records)


async def test_publish_sync_is_what_the_cli_uses(redis_server: RedisServer) -> None:
    env = parse_envelope(json.dumps(envelope(17, 4)))
    assert await asyncio.to_thread(publish_sync, redis_server.url, env)
    assert not await asyncio.to_thread(publish_sync, redis_server.url, env)


def gateway_process(broker: str, keys: Keys) -> tuple[subprocess.Popen[str], str]:
    """Start `gamesync gateway` and wait for its ready line (run in a thread)."""
    args = ["gateway", "--broker", broker, "--keys", str(keys.jwks_path), "--authz", "open"]
    proc = subprocess.Popen(
        [*GAMESYNC, *args, "--port", "0", "--internal-port", "0"],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    assert proc.stdout is not None
    line = proc.stdout.readline()
    match = re.search(r"public=(\S+)", line)
    assert match is not None, line
    return proc, match.group(1).replace("http://", "ws://")


@pytest.fixture
async def processes() -> AsyncIterator[list[subprocess.Popen[str]]]:
    started: list[subprocess.Popen[str]] = []
    yield started
    for proc in started:
        proc.terminate()
    for proc in started:
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)


async def test_cli_publish_reaches_players_on_two_gateway_processes(
    redis_server: RedisServer,
    keys: Keys,
    tmp_path: Path,
    processes: list[subprocess.Popen[str]],
) -> None:
    started = await asyncio.wait_for(
        asyncio.gather(*(asyncio.to_thread(gateway_process, redis_server.url, keys) for _ in "ab")),
        60,
    )
    processes.extend(proc for proc, _ in started)
    urls = [url for _, url in started]
    sockets = [await websockets.connect(f"{u}/ws/games/18?token={keys.token()}") for u in urls]
    try:
        for ws in sockets:
            assert json.loads(await ws.recv())["type"] == "welcome"
            assert json.loads(await ws.recv())["type"] == "subscribed"
        client = aioredis.Redis(port=redis_server.port, protocol=2)

        async def both_pods_subscribed() -> bool:
            [(_, count)] = await client.pubsub_numsub("game:{18}")
            return int(count) == 2

        await eventually(both_pods_subscribed, what="both gateway processes subscribed")
        await client.aclose()
        path = tmp_path / "envelope.json"
        path.write_text(json.dumps(envelope(18, 7, traceparent=TRACEPARENT)))
        result = await asyncio.to_thread(
            subprocess.run,
            [*GAMESYNC, "publish", "18", str(path), "--broker", redis_server.url],
            capture_output=True,
            text=True,
            timeout=30,
        )
        assert result.returncode == 0, result.stderr
        assert json.loads(result.stdout) == {"published": True}
        for ws in sockets:
            frame = json.loads(await asyncio.wait_for(ws.recv(), 10))
            assert (frame["type"], frame["gameVersion"], frame["data"]) == ("snapshot", 7, {"v": 7})
    finally:
        for ws in sockets:
            await ws.close()


async def test_publish_nowait_keeps_going_while_one_game_fails_for_a_reason_of_its_own(
    redis_server: RedisServer,
) -> None:
    """An error that is not an outage (here Redis refuses one game's script: WRONGTYPE) is
    retried for that game with backoff, and costs the other games nothing."""
    client = redis_server.client()
    client.set("game:{21}:latest", "{}")
    client.rpush("game:{21}:version", "not a string")  # the script's GET fails on a list
    async with Publisher(redis_server.url, timeout=0.3) as publisher:
        assert publisher.publish_nowait(envelope(21, 1))
        assert publisher.publish_nowait(envelope(22, 1))
        await eventually(lambda: client.get("game:{22}:latest") is not None, what="game 22")
        await eventually(lambda: publisher.stats.retries >= 3, what="game 21 retried")
        assert publisher.backlog().games == 1
        assert publisher.publish_nowait(envelope(23, 1))  # the worker is still there
        await eventually(lambda: client.get("game:{23}:latest") is not None, what="game 23")
        client.delete("game:{21}:version")
        assert await publisher.flush(timeout=10)
        assert publisher.healthy
    assert parse_envelope(client.get("game:{21}:latest") or b"").version == 1
