"""The standalone Redis broker between real gateway pods, over a real redis-server.

Every pod is a `GatewayServer` (two real uvicorn listeners on port 0) in this process, with
its own broker connections; players are real websocket clients.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import random
import re

import httpx
import pytest
import redis.asyncio as aioredis
from pods import (
    FAST,
    PUBLISH_TOKEN,
    PlayerFactory,
    PodFactory,
    envelope,
    eventually,
    http_publish,
    readyz,
)

from gamesync.broker import create_broker
from gamesync.broker.redis import PUBLISH_SCRIPT
from gamesync.broker.redis.pubsub import RedisBroker
from gamesync.broker.redis.script import script_keys
from gamesync.broker.redis.stream import PubSubStream
from gamesync.envelope import Envelope, parse_envelope
from gamesync.supervisor import Supervisor
from redis_servers import RedisServer

pytestmark = pytest.mark.redis


def redis_broker(url: str, *, latest_ttl_seconds: int) -> RedisBroker:
    broker = create_broker(url, latest_ttl_seconds=latest_ttl_seconds)
    assert isinstance(broker, RedisBroker)
    return broker


def broker_of(pod: object) -> RedisBroker:
    broker = pod.gateway.broker  # type: ignore[attr-defined]
    assert isinstance(broker, RedisBroker)
    return broker


async def numsub(server: RedisServer, game_id: int) -> int:
    client = aioredis.Redis(port=server.port, protocol=2)
    try:
        [(_, count)] = await client.pubsub_numsub(f"game:{{{game_id}}}")
        return int(count)
    finally:
        await client.aclose()


async def test_publish_on_one_pod_reaches_players_on_every_pod(
    redis_server: RedisServer, pod_factory: PodFactory, player_factory: PlayerFactory
) -> None:
    pods = [await pod_factory(redis_server.url) for _ in range(3)]
    players = [await player_factory(pod) for pod in pods]
    for player in players:
        await player.subscribe(101)

    assert await http_publish(pods[0], 101, 1)
    assert await http_publish(pods[2], 101, 2)

    for player in players:
        await player.wait_version(101, 2)
        assert player.versions[101] == [1, 2]

    async with httpx.AsyncClient() as client:
        text = (await client.get(f"{pods[1].internal_url}/metrics")).text
    assert "gamesync_broker_subscriptions 1.0" in text
    assert "gamesync_broker_received_total 2.0" in text
    assert 'gamesync_broker_pubsub_lag_seconds_bucket{le="+Inf"} 2.0' in text
    assert "gamesync_broker_probe_failures_total 0.0" in text
    [receive_seconds] = re.findall(r"^gamesync_broker_receive_seconds_total (\S+)$", text, re.M)
    assert 0 < float(receive_seconds) < 1  # two envelopes read: some time, far under a second


async def test_players_only_get_the_games_they_watch(
    redis_server: RedisServer, pod_factory: PodFactory, player_factory: PlayerFactory
) -> None:
    a, b = await pod_factory(redis_server.url), await pod_factory(redis_server.url)
    watches_1, watches_2 = await player_factory(a), await player_factory(b)
    await watches_1.subscribe(201)
    await watches_2.subscribe(202)

    await http_publish(a, 202, 5)
    await http_publish(b, 201, 7)
    await watches_1.wait_version(201, 7)
    await watches_2.wait_version(202, 5)
    # one more publish to each after the fact: still nothing crosses over
    await http_publish(a, 201, 8)
    await http_publish(a, 202, 9)
    await watches_1.wait_version(201, 8)
    await watches_2.wait_version(202, 9)

    assert set(watches_1.versions) == {201}
    assert set(watches_2.versions) == {202}
    # and the pod never subscribed to the game none of its players watches
    assert broker_of(a).subscribed_games == {201}
    assert broker_of(b).subscribed_games == {202}


async def test_one_redis_subscription_per_game_per_pod_until_the_last_player_leaves(
    redis_server: RedisServer, pod_factory: PodFactory, player_factory: PlayerFactory
) -> None:
    pod = await pod_factory(redis_server.url)
    other = await pod_factory(redis_server.url)
    players = [await player_factory(pod, user=str(i)) for i in range(3)]
    for player in players:
        await player.subscribe(301)
    await eventually(lambda: 301 in broker_of(pod).confirmed_games)
    assert await numsub(redis_server, 301) == 1  # three players, one SUBSCRIBE

    watcher = await player_factory(other)
    await watcher.subscribe(301)
    await eventually(lambda: 301 in broker_of(other).confirmed_games)
    assert await numsub(redis_server, 301) == 2  # one per pod

    await players[0].unsubscribe(301)
    await players[1].unsubscribe(301)
    assert await numsub(redis_server, 301) == 2  # still one player on the first pod
    await players[2].unsubscribe(301)
    await eventually(lambda: numsub_is(redis_server, 301, 1), what="the first pod to unsubscribe")
    assert broker_of(pod).subscribed_games == frozenset()
    assert broker_of(pod).stats.subscriptions == 0
    client = aioredis.Redis(port=redis_server.port, protocol=2)
    try:
        channels = await client.pubsub_channels("game:*")
    finally:
        await client.aclose()
    assert channels == [b"game:{301}"]  # never a pattern, never a global channel


async def numsub_is(server: RedisServer, game_id: int, expected: int) -> bool:
    return await numsub(server, game_id) == expected


async def test_new_subscriber_gets_the_latest_snapshot_at_once(
    redis_server: RedisServer, pod_factory: PodFactory, player_factory: PlayerFactory
) -> None:
    a, b = await pod_factory(redis_server.url), await pod_factory(redis_server.url)
    assert await http_publish(a, 401, 3)
    assert not await http_publish(a, 401, 2)  # stale: refused, latest stays 3
    late = await player_factory(b)
    await late.subscribe(401)
    await late.wait_version(401, 3)
    assert late.versions[401] == [3]
    stored = json.loads(redis_server.client().get("game:{401}:latest") or b"{}")
    assert stored["version"] == 3
    assert 0 < redis_server.client().ttl("game:{401}:latest") <= 86_400


async def test_stale_publishes_are_rejected_atomically_under_concurrent_publishers(
    redis_server: RedisServer,
) -> None:
    brokers = [redis_broker(redis_server.url, latest_ttl_seconds=60) for _ in range(4)]
    received: list[Envelope] = []
    listener = redis_broker(redis_server.url, latest_ttl_seconds=60)
    await listener.start(received.append)
    for broker in brokers:
        await broker.start(lambda env: None)
    try:
        await eventually(lambda: listener.ready, what="listener ready")
        await listener.subscribe(501)
        # every version twice, from different publishers, in scrambled order
        versions = [*range(1, 201), *range(1, 201)]
        random.Random(7).shuffle(versions)
        jobs = [
            brokers[i % 4].publish(parse_envelope(json.dumps(envelope(501, v))))
            for i, v in enumerate(versions)
        ]
        results = await asyncio.gather(*jobs)
        await eventually(lambda: any(e.version == 200 for e in received), what="v200 delivered")
        got = [e.version for e in received]
        # what went out is strictly increasing: no stale version ever reached the channel
        assert got == sorted(set(got))
        assert sum(results) == len(got)
        assert sum(b.stats.stale_publishes for b in brokers) == len(jobs) - len(got)
        latest = await listener.latest(501)
        assert latest is not None
        assert latest.version == 200
    finally:
        for broker in [*brokers, listener]:
            await broker.stop()


async def test_traceparent_and_fields_go_through_byte_for_byte(
    redis_server: RedisServer, pod_factory: PodFactory
) -> None:
    broker = redis_broker(redis_server.url, latest_ttl_seconds=60)
    received: list[Envelope] = []
    await broker.start(received.append)
    try:
        await eventually(lambda: broker.ready)
        await broker.subscribe(701)
        raw = (
            b'{"gameId": 701,  "version": 1, "snapshot": {"z": 1, "a": [1, 2]},'
            b' "traceparent": "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",'
            b' "publishedAt": 1.5}'
        )
        assert await broker.publish(parse_envelope(raw))
        await eventually(lambda: bool(received))
        assert received[0].raw == raw
        assert redis_server.client().get("game:{701}:latest") == raw
    finally:
        await broker.stop()


async def test_redis_killed_and_restarted_every_player_converges_without_reconnecting(
    redis_server: RedisServer, pod_factory: PodFactory, player_factory: PlayerFactory
) -> None:
    url = f"{redis_server.url}?{FAST}"
    pods = [await pod_factory(url) for _ in range(2)]
    players = [await player_factory(pod, user=str(i)) for i, pod in enumerate(pods * 2)]
    games = [801, 802, 803]
    for player in players:
        for game in games:
            await player.subscribe(game)
    for game in games:
        await http_publish(pods[0], game, 1)
    for player in players:
        for game in games:
            await player.wait_version(game, 1)

    redis_server.kill()
    for pod in pods:
        await eventually(lambda pod=pod: _not_ready(pod), what="readiness false")
    async with httpx.AsyncClient() as client:
        response = await client.post(
            f"{pods[0].internal_url}/v1/games/801/snapshots",
            json=envelope(801, 9),
            headers={"Authorization": f"Bearer {PUBLISH_TOKEN}"},
        )
    assert response.status_code == 503  # the publisher retries later; nothing is half-done
    redis_server.start()  # same port, empty (no persistence)
    for pod in pods:
        await eventually(lambda pod=pod: readyz(pod), what="readiness true again")
    for game in games:
        assert await http_publish(pods[1], game, 2)

    for player in players:
        for game in games:
            await player.wait_version(game, 2)
        assert not player.closed  # the socket stayed open throughout
        for game in games:
            assert player.versions[game] == [1, 2]
    assert all(broker_of(pod).stats.reconnects >= 1 for pod in pods)


async def _not_ready(pod: object) -> bool:
    return not await readyz(pod)  # type: ignore[arg-type]


async def test_snapshots_published_while_a_pod_was_cut_off_arrive_after_it_resubscribes(
    redis_server: RedisServer,
    pod_factory: PodFactory,
    player_factory: PlayerFactory,
    proxy_factory: object,
) -> None:
    proxy = await proxy_factory(redis_server.port)  # type: ignore[operator]
    cut_off = await pod_factory(f"{proxy.url}?{FAST}")
    direct = await pod_factory(redis_server.url)
    player = await player_factory(cut_off)
    for game in (901, 902):
        await player.subscribe(game)
        await http_publish(direct, game, 1)
        await player.wait_version(game, 1)

    proxy.cut()
    await eventually(lambda: not broker_of(cut_off).ready, what="broker unready")
    assert not await readyz(cut_off)
    # published while the pod cannot hear: pub/sub loses it, the latest key keeps it
    assert await http_publish(direct, 901, 2)
    assert await http_publish(direct, 902, 5)
    assert await numsub(redis_server, 901) == 0
    proxy.restore()

    await player.wait_version(901, 2)
    await player.wait_version(902, 5)
    await eventually(lambda: readyz(cut_off), what="readiness true again")
    assert not player.closed
    assert player.versions == {901: [1, 2], 902: [1, 5]}
    assert broker_of(cut_off).stats.resyncs >= 2


async def test_a_deaf_subscription_is_found_by_the_probe_and_rebuilt(
    pod_factory: PodFactory, player_factory: PlayerFactory, proxy_factory: object
) -> None:
    """Failover seen through a proxy: the pub/sub socket stays on the old server, alive and
    deaf, while commands (and the new publishes) go to the new one."""
    old, new = RedisServer().start(), RedisServer().start()
    try:
        proxy = await proxy_factory(old.port)  # type: ignore[operator]
        pod = await pod_factory(f"{proxy.url}?{FAST}")
        player = await player_factory(pod)
        await player.subscribe(1001)
        broker = broker_of(pod)
        await eventually(lambda: 1001 in broker.confirmed_games)
        assert await http_publish(pod, 1001, 1)
        await player.wait_version(1001, 1)

        proxy.retarget(new.port)
        with contextlib.closing(old.client()) as admin:
            admin.client_kill_filter(_type="normal", skipme=True)  # command connections move
        new.client().evalsha(
            new.client().script_load(PUBLISH_SCRIPT.decode()),
            3,
            *script_keys(1001),
            json.dumps(envelope(1001, 9)),
            9,
            60,
        )

        await player.wait_version(1001, 9)
        assert player.versions[1001] == [1, 9]
        assert broker.stats.probe_failures >= 1
        assert broker.stats.reconnects >= 1
        assert not player.closed
        await eventually(lambda: broker.ready)
    finally:
        old.stop()
        new.stop()


async def test_after_a_reconnect_every_game_is_resubscribed_in_batches(
    redis_server: RedisServer,
) -> None:
    broker = redis_broker(f"{redis_server.url}?{FAST}", latest_ttl_seconds=60)
    await broker.start(lambda env: None)
    games = range(2000, 2600)
    admin = redis_server.client()
    try:
        await eventually(lambda: broker.ready)
        await asyncio.gather(*(broker.subscribe(g) for g in games))
        assert broker.confirmed_games == set(games)
        [link] = broker._links.values()
        # The pub/sub socket is read by the batched stream, not by redis-py's parser.
        assert isinstance(link.stream, PubSubStream)
        assert link.conn._writer.transport.get_protocol() is link.stream  # type: ignore[union-attr]
        before = admin.info("commandstats")["cmdstat_subscribe"]["calls"]

        admin.client_kill_filter(_type="pubsub")  # the server drops our pub/sub connection
        await eventually(lambda: broker.stats.reconnects == 1, what="a reconnect")
        await eventually(lambda: broker.ready and broker.confirmed_games == set(games))
        after = admin.info("commandstats")["cmdstat_subscribe"]["calls"]
        assert after - before == 2  # 600 games + the probe channel: 512 per SUBSCRIBE
        assert len(admin.pubsub_channels("game:*")) == 600
        assert broker.stats.resyncs == 600
    finally:
        await broker.stop()
        admin.close()


async def test_a_game_left_and_rejoined_at_once_stays_subscribed(
    redis_server: RedisServer,
) -> None:
    broker = redis_broker(redis_server.url, latest_ttl_seconds=60)
    received: list[Envelope] = []
    await broker.start(received.append)
    try:
        await eventually(lambda: broker.ready)
        await broker.subscribe(2700)
        for _ in range(20):  # UNSUBSCRIBE and SUBSCRIBE confirmations cross each other
            await broker.unsubscribe(2700)
            await broker.subscribe(2700)
        await eventually(lambda: numsub_is(redis_server, 2700, 1))
        assert await broker.publish(parse_envelope(json.dumps(envelope(2700, 1))))
        await eventually(lambda: [e.version for e in received] == [1])
        assert broker.confirmed_games == {2700}
    finally:
        await broker.stop()


async def test_a_pod_started_while_redis_is_away_turns_ready_when_it_comes(
    pod_factory: PodFactory, player_factory: PlayerFactory, proxy_factory: object
) -> None:
    server = RedisServer().start()
    try:
        proxy = await proxy_factory(server.port)  # type: ignore[operator]
        proxy.cut()
        pod = await pod_factory(f"{proxy.url}?{FAST}")
        assert not await readyz(pod)
        player = await player_factory(pod)
        await player.ws.send(json.dumps({"type": "subscribe", "gameId": 2800}))
        await player.wait(
            lambda: any(f.get("code") == "service_unavailable" for f in player.frames)
        )
        proxy.restore()
        await eventually(lambda: readyz(pod), what="ready once Redis is reachable")
        await player.subscribe(2800)
        assert await http_publish(pod, 2800, 1)
        await player.wait_version(2800, 1)
    finally:
        server.stop()


async def test_rediss_urls_fan_out_over_tls(
    pod_factory: PodFactory, player_factory: PlayerFactory
) -> None:
    server = RedisServer(tls=True).start()
    try:
        a, b = await pod_factory(server.url), await pod_factory(server.url)
        player = await player_factory(b)
        await player.subscribe(2900)
        assert await http_publish(a, 2900, 1)
        await player.wait_version(2900, 1)
        assert broker_of(b).describe() == f"rediss://127.0.0.1:{server.port}/0"
    finally:
        server.stop()


async def _chaos(
    seconds: float,
    redis_server: RedisServer,
    pod_factory: PodFactory,
    player_factory: PlayerFactory,
    proxy_factory: object,
) -> None:
    """Publish steadily from a pod that always reaches Redis while another pod's link is cut
    and restored at random; at the end every player holds every game's newest version, each
    having seen only increasing versions, on the socket it started with."""
    rng = random.Random(11)
    proxy = await proxy_factory(redis_server.port)  # type: ignore[operator]
    flaky = await pod_factory(f"{proxy.url}?{FAST}")
    steady = await pod_factory(f"{redis_server.url}?{FAST}")
    games = list(range(3000, 3012))
    players = [await player_factory(pod, user=str(i)) for i, pod in enumerate([flaky, steady] * 2)]
    for player in players:
        for game in games:
            await player.subscribe(game)
    versions = dict.fromkeys(games, 0)

    async def publish_steadily() -> None:
        async with httpx.AsyncClient() as client:
            # Every game gets a first version before the random ones, so each has a latest key
            # however few publishes a loaded machine manages in the chaos window.
            order = iter(games)
            while True:
                game = next(order, None) or rng.choice(games)
                versions[game] += 1
                response = await client.post(
                    f"{steady.internal_url}/v1/games/{game}/snapshots",
                    json=envelope(game, versions[game]),
                    headers={"Authorization": f"Bearer {PUBLISH_TOKEN}"},
                )
                assert response.status_code == 200
                await asyncio.sleep(0.005)  # pacing the load, not synchronising

    publisher = asyncio.create_task(publish_steadily())
    try:
        deadline = asyncio.get_running_loop().time() + seconds
        while asyncio.get_running_loop().time() < deadline:
            await asyncio.sleep(rng.uniform(0.05, 0.4))  # chaos timing, not synchronisation
            proxy.cut()
            await asyncio.sleep(rng.uniform(0.05, 0.4))
            proxy.restore()
    finally:
        publisher.cancel()
        await asyncio.gather(publisher, return_exceptions=True)

    # the newest version of each game is what Redis kept (a cancelled request may have landed)
    newest = {
        game: parse_envelope(redis_server.client().get(f"game:{{{game}}}:latest") or b"").version
        for game in games
    }
    for player in players:
        for game in games:
            await player.wait_version(game, newest[game], timeout=15)
            assert player.last(game) == newest[game]
        assert not player.closed
        for game in games:
            seen = player.versions[game]
            assert seen == sorted(set(seen)), seen
    assert broker_of(flaky).stats.reconnects >= 1
    await eventually(lambda: readyz(flaky))


async def test_chaos_short_cuts_while_publishing_every_player_converges(
    redis_server: RedisServer,
    pod_factory: PodFactory,
    player_factory: PlayerFactory,
    proxy_factory: object,
) -> None:
    await _chaos(2.0, redis_server, pod_factory, player_factory, proxy_factory)


@pytest.mark.slow
@pytest.mark.timeout(180)
async def test_chaos_soak_cuts_while_publishing_every_player_converges(
    redis_server: RedisServer,
    pod_factory: PodFactory,
    player_factory: PlayerFactory,
    proxy_factory: object,
) -> None:
    await _chaos(45.0, redis_server, pod_factory, player_factory, proxy_factory)


async def test_a_handler_failing_on_one_game_costs_the_others_nothing_and_logs_once(
    redis_server: RedisServer, caplog: pytest.LogCaptureFixture
) -> None:
    received: list[Envelope] = []

    def handler(env: Envelope) -> None:
        if env.game_id == 801:
            raise RuntimeError("a bug in the handler")
        received.append(env)

    broker = redis_broker(redis_server.url, latest_ttl_seconds=60)
    supervisor = Supervisor()
    await broker.start(handler, supervisor)
    try:
        await eventually(lambda: broker.ready, what="ready")
        await broker.subscribe(801)
        await broker.subscribe(802)
        for version in range(1, 6):
            await broker.publish(parse_envelope(json.dumps(envelope(801, version))))
        await broker.publish(parse_envelope(json.dumps(envelope(802, 1))))
        await eventually(lambda: [e.game_id for e in received] == [802], what="802 delivered")
        failures = [r for r in caplog.records if "envelope handler failed" in r.getMessage()]
        assert len(failures) == 1  # once with its traceback, not once per envelope
        assert failures[0].exc_info is not None
        # The broker's long-lived tasks run under the supervisor it was given.
        names = {task.get_name() for task in supervisor.tasks}
        assert "redis-probe" in names
        assert any(name.startswith("redis-pubsub-") for name in names)
        assert not supervisor.failed
    finally:
        await broker.stop()
        await supervisor.stop()
