"""The `Broker` contract, one behavioural suite run against every broker: the in-process one,
Redis standalone and Redis Cluster (real redis-server processes, no fakes)."""

from __future__ import annotations

import itertools
import json
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import pytest
from pods import FAST, eventually
from redis.crc import key_slot

from gamesync.broker import Broker, BrokerStats, create_broker
from gamesync.envelope import Envelope, parse_envelope
from redis_servers import RedisCluster3, RedisServer

#: game ids unique per test: the cluster is shared by the whole session
_ids = itertools.count(90_000)

PASSWORD = "s3cret-Pw"


@pytest.fixture(
    params=[
        "memory",
        pytest.param("redis", marks=pytest.mark.redis),
        pytest.param("cluster", marks=pytest.mark.redis),
    ]
)
def broker_url(request: pytest.FixtureRequest) -> str:
    """A `--broker` URL for each implementation (Redis ones with fast probes and retries)."""
    if request.param == "memory":
        return "memory://"
    if request.param == "redis":
        server: RedisServer = request.getfixturevalue("redis_server")
        return f"{server.url}?{FAST}"
    cluster: RedisCluster3 = request.getfixturevalue("redis_cluster")
    return f"{cluster.url}?{FAST}"


@dataclass
class Started:
    broker: Broker
    received: list[Envelope] = field(default_factory=list)

    def versions(self, game_id: int) -> list[int]:
        return [e.version for e in self.received if e.game_id == game_id]


@pytest.fixture
async def started(broker_url: str) -> AsyncIterator[Started]:
    """A started, ready broker that records every envelope it hands over."""
    rig = Started(create_broker(broker_url, latest_ttl_seconds=60))
    await rig.broker.start(rig.received.append)
    try:
        await eventually(lambda: rig.broker.ready, what="broker ready")
        yield rig
    finally:
        await rig.broker.stop()


def make(game_id: int, version: int, **extra: object) -> Envelope:
    """An envelope with `publishedAt`, so every broker stores exactly these bytes."""
    doc = {"publishedAt": round(time.time(), 6), "gameId": game_id, "version": version}
    return parse_envelope(json.dumps({**doc, "snapshot": {"v": version}, **extra}))


def same_slot_pair() -> tuple[int, int]:
    """Two fresh game ids in one cluster slot, so one connection carries both (ordered)."""
    first = next(_ids)
    slot = key_slot(f"game:{{{first}}}".encode())
    return first, next(g for g in _ids if key_slot(f"game:{{{g}}}".encode()) == slot)


async def test_a_subscriber_receives_what_is_published_byte_for_byte(started: Started) -> None:
    game = next(_ids)
    await started.broker.subscribe(game)
    sent = make(game, 1, traceparent="00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01")
    assert await started.broker.publish(sent)
    await eventually(lambda: started.versions(game) == [1], what="delivery")
    assert started.received[-1].raw == sent.raw
    assert started.received[-1] == sent


async def test_a_version_not_newer_is_refused_and_changes_nothing(started: Started) -> None:
    game = next(_ids)
    await started.broker.subscribe(game)
    five = make(game, 5)
    assert await started.broker.publish(five)
    assert not await started.broker.publish(make(game, 5, extra="duplicate"))
    assert not await started.broker.publish(make(game, 4))
    latest = await started.broker.latest(game)
    assert latest is not None
    assert latest.raw == five.raw
    assert await started.broker.publish(make(game, 6))
    await eventually(lambda: 6 in started.versions(game), what="v6 delivered")
    assert started.versions(game) == [5, 6]  # the refused ones never went out


async def test_latest_is_readable_before_and_after_subscribing(started: Started) -> None:
    game, unknown = next(_ids), next(_ids)
    stored = make(game, 3)
    assert await started.broker.publish(stored)
    before = await started.broker.latest(game)
    assert before is not None
    assert before.raw == stored.raw
    await started.broker.subscribe(game)  # what a hub does for a new subscriber: then read
    after = await started.broker.latest(game)
    assert after is not None
    assert after.version == 3
    assert await started.broker.latest(unknown) is None


async def test_unsubscribe_stops_delivery(started: Started) -> None:
    game, marker = same_slot_pair()
    await started.broker.subscribe(game)
    await started.broker.subscribe(marker)
    assert await started.broker.publish(make(game, 1))
    await eventually(lambda: started.versions(game) == [1], what="v1 delivered")
    await started.broker.unsubscribe(game)
    assert await started.broker.publish(make(game, 2))
    assert await started.broker.publish(make(marker, 1))  # after v2, on the same connection
    await eventually(lambda: started.versions(marker) == [1], what="the marker delivered")
    assert started.versions(game) == [1]
    latest = await started.broker.latest(game)
    assert latest is not None
    assert latest.version == 2  # stored all the same


async def test_stats_count_what_the_broker_did(started: Started) -> None:
    stats = started.broker.stats
    assert isinstance(stats, BrokerStats)
    games = [next(_ids), next(_ids)]
    for game in games:
        await started.broker.subscribe(game)
    assert stats.subscriptions == 2
    for game in games:
        assert await started.broker.publish(make(game, 1))
    assert not await started.broker.publish(make(games[0], 1))
    await eventually(lambda: stats.received == 2, what="both received")
    assert (stats.publishes, stats.stale_publishes, stats.malformed) == (2, 1, 0)
    assert stats.lag_count == 2  # publishedAt → arrival, once per envelope received
    await started.broker.unsubscribe(games[0])
    assert stats.subscriptions == 1
    assert started.broker.stats is stats  # one object for the broker's life: metrics hold it


async def test_ready_only_between_start_and_stop(broker_url: str) -> None:
    broker = create_broker(broker_url, latest_ttl_seconds=60)
    assert not broker.ready
    await broker.start(lambda envelope: None)
    try:
        await eventually(lambda: broker.ready, what="ready after start")
    finally:
        await broker.stop()
    assert not broker.ready


async def test_describe_is_log_safe(broker_url: str) -> None:
    scheme, _, rest = broker_url.partition("://")
    broker = create_broker(f"{scheme}://app:{PASSWORD}@{rest}", latest_ttl_seconds=60)
    try:
        text = broker.describe()
        assert text.startswith(f"{scheme}://")
        assert PASSWORD not in text
        assert "app" not in text
        assert "probe_interval" not in text  # GameSync's own options are not where it points
        if rest:
            assert rest.split("?")[0].split(",")[0] in text  # host:port, for the reader
    finally:
        await broker.stop()
