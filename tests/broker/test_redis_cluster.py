"""The Cluster broker over a real 3-master Redis Cluster: sharded pub/sub, one reader per node,
hash-tagged names, and subscriptions that follow a slot when it moves."""

from __future__ import annotations

import contextlib
import itertools
import json
from collections.abc import Iterator

import pytest
from pods import FAST, PlayerFactory, PodFactory, eventually, http_publish, readyz
from redis.crc import key_slot

from gamesync.broker.redis import PUBLISH_SCRIPT_SHA1
from gamesync.broker.redis.cluster import ClusterRedisBroker
from gamesync.publisher import Publisher
from gamesync.server import GatewayServer
from redis_servers import RedisCluster3, RedisServer

pytestmark = pytest.mark.redis

#: game ids are unique per test: the cluster is shared by the whole session
_ids = itertools.count(50_000, 1)


def broker_of(pod: GatewayServer) -> ClusterRedisBroker:
    broker = pod.gateway.broker
    assert isinstance(broker, ClusterRedisBroker)
    return broker


def games_on_every_node(cluster: RedisCluster3, per_node: int = 1) -> list[int]:
    """Fresh game ids whose slots cover all three masters."""
    wanted = {node.port: per_node for node in cluster.nodes}
    games: list[int] = []
    while any(wanted.values()):
        game = next(_ids)
        owner = cluster.owner_of(key_slot(f"game:{{{game}}}".encode()))
        if wanted[owner.port]:
            wanted[owner.port] -= 1
            games.append(game)
    return games


def shard_subscribers(node: RedisServer, game: int) -> int:
    with contextlib.closing(node.client()) as client:
        reply = client.execute_command("PUBSUB", "SHARDNUMSUB", f"game:{{{game}}}")
    return int(reply[1])


async def test_cluster_fans_out_between_pods_with_one_reader_per_shard(
    redis_cluster: RedisCluster3, pod_factory: PodFactory, player_factory: PlayerFactory
) -> None:
    a, b = await pod_factory(redis_cluster.url), await pod_factory(redis_cluster.url)
    games = games_on_every_node(redis_cluster)
    watchers = [await player_factory(a), await player_factory(b)]
    for player in watchers:
        for game in games:
            await player.subscribe(game)
    for pod in (a, b):
        broker = broker_of(pod)
        await eventually(lambda broker=broker: broker.confirmed_games == set(games))
        assert broker.ready
        assert len(broker._links) == 3  # one pub/sub connection and reader per primary

    for game in games:
        assert await http_publish(a, game, 1)
        assert await http_publish(b, game, 2)
    for player in watchers:
        for game in games:
            await player.wait_version(game, 2)
            assert player.versions[game] == [1, 2]

    for game in games:
        owner = redis_cluster.owner_of(key_slot(f"game:{{{game}}}".encode()))
        assert shard_subscribers(owner, game) == 2  # one SSUBSCRIBE per pod, on the owner
        for node in redis_cluster.nodes:
            if node is not owner:
                assert shard_subscribers(node, game) == 0


async def test_cluster_key_and_channel_share_the_slot_and_stale_publishes_are_refused(
    redis_cluster: RedisCluster3, pod_factory: PodFactory, player_factory: PlayerFactory
) -> None:
    [game] = games_on_every_node(redis_cluster, 1)[:1]
    pod = await pod_factory(redis_cluster.url)
    assert key_slot(f"game:{{{game}}}:latest".encode()) == key_slot(f"game:{{{game}}}".encode())
    assert await http_publish(pod, game, 5)
    assert not await http_publish(pod, game, 5)
    assert not await http_publish(pod, game, 4)
    assert broker_of(pod).stats.stale_publishes == 2
    owner = redis_cluster.owner_of(key_slot(f"game:{{{game}}}".encode()))
    with contextlib.closing(owner.client()) as client:
        assert json.loads(client.get(f"game:{{{game}}}:latest") or b"{}")["version"] == 5
        assert client.script_exists(PUBLISH_SCRIPT_SHA1) == [True]

    late = await player_factory(pod)
    await late.subscribe(game)
    await late.wait_version(game, 5)  # latest on subscribe, from the slot's owner


async def test_cluster_subscription_follows_its_slot_to_another_node(
    redis_cluster: RedisCluster3, pod_factory: PodFactory, player_factory: PlayerFactory
) -> None:
    [game] = games_on_every_node(redis_cluster, 1)[:1]
    slot = key_slot(f"game:{{{game}}}".encode())
    pod = await pod_factory(f"{redis_cluster.url}?{FAST}")
    publisher = await pod_factory(redis_cluster.url)
    player = await player_factory(pod)
    await player.subscribe(game)
    broker = broker_of(pod)
    await eventually(lambda: game in broker.confirmed_games)
    assert await http_publish(publisher, game, 1)
    await player.wait_version(game, 1)

    source = redis_cluster.owner_of(slot)
    target = next(n for n in redis_cluster.nodes if n is not source)
    redis_cluster.move_slot(slot, target)  # the old owner drops our SSUBSCRIBE (sunsubscribe)

    await eventually(lambda: shard_subscribers(target, game) == 1, what="re-subscribed on target")
    assert shard_subscribers(source, game) == 0
    assert await http_publish(publisher, game, 2)  # the publisher follows MOVED
    await player.wait_version(game, 2)
    assert player.versions[game] == [1, 2]
    assert not player.closed
    await eventually(lambda: broker.ready)


@pytest.fixture
def own_cluster() -> Iterator[RedisCluster3]:
    """A cluster of this test's own, for killing nodes."""
    cluster = RedisCluster3().start()
    yield cluster
    cluster.stop()


async def test_cluster_node_killed_and_restarted_players_converge_without_reconnecting(
    own_cluster: RedisCluster3, pod_factory: PodFactory, player_factory: PlayerFactory
) -> None:
    games = games_on_every_node(own_cluster)
    pod = await pod_factory(f"{own_cluster.url}?{FAST}")
    other = await pod_factory(own_cluster.url)
    player = await player_factory(pod)
    for game in games:
        await player.subscribe(game)
        assert await http_publish(other, game, 1)
        await player.wait_version(game, 1)
    victim = own_cluster.owner_of(key_slot(f"game:{{{games[0]}}}".encode()))

    victim.kill()
    await eventually(lambda: not broker_of(pod).ready, what="unready without a shard")
    assert not await readyz(pod)
    victim.start()  # same node id and slots (nodes.conf kept), data gone
    await eventually(lambda: readyz(pod), timeout=20, what="ready again")

    for game in games:
        assert await http_publish(other, game, 2)
    for game in games:
        await player.wait_version(game, 2)
        assert player.versions[game] == [1, 2]
    assert not player.closed
    assert broker_of(pod).stats.reconnects >= 1


async def test_cluster_publisher_helper_reaches_cluster_pods(
    redis_cluster: RedisCluster3, pod_factory: PodFactory, player_factory: PlayerFactory
) -> None:
    games = games_on_every_node(redis_cluster)
    pod = await pod_factory(redis_cluster.url)
    player = await player_factory(pod)
    for game in games:
        await player.subscribe(game)
    async with Publisher(redis_cluster.url) as publisher:
        for game in games:
            assert await publisher.publish({"gameId": game, "version": 3, "snapshot": {}})
            assert not await publisher.publish({"gameId": game, "version": 2, "snapshot": {}})
    for game in games:
        await player.wait_version(game, 3)


async def test_cluster_subscribe_on_a_stale_slot_map_follows_moved(
    redis_cluster: RedisCluster3, pod_factory: PodFactory, player_factory: PlayerFactory
) -> None:
    [game] = games_on_every_node(redis_cluster, 1)[:1]
    slot = key_slot(f"game:{{{game}}}".encode())
    pod = await pod_factory(f"{redis_cluster.url}?{FAST}")
    broker = broker_of(pod)
    await eventually(lambda: broker.ready)
    source = redis_cluster.owner_of(slot)
    target = next(n for n in redis_cluster.nodes if n is not source)
    redis_cluster.move_slot(slot, target)  # the pod's slot map still names the old owner

    player = await player_factory(pod)
    await player.subscribe(game)  # SSUBSCRIBE to the old owner: MOVED, refresh, retry
    assert shard_subscribers(target, game) == 1
    assert await http_publish(pod, game, 1)
    await player.wait_version(game, 1)
