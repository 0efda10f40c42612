"""gamesync.client's game-affine option against real gateways started as different shards."""

from __future__ import annotations

import asyncio

from wire import GatewayFactory, Keys, envelope, publish, wait_until

from gamesync.client import ClientStatus, GameSyncClient, _affine_url, _shards_url
from gamesync.protocol import Close
from gamesync.server import GatewayServer


def _ws(server: GatewayServer) -> str:
    return server.public_url.replace("http://", "ws://") + "/ws"


def _refused(server: GatewayServer) -> float:
    value = server.gateway.metrics.registry.get_sample_value(
        "gamesync_handshakes_refused_total", {"reason": "wrong_shard", "transport": "websocket"}
    )
    return value or 0.0


async def _first_snapshot(client: GameSyncClient) -> tuple[int, int]:
    async with asyncio.timeout(5):
        async for snapshot in client.snapshots():
            return snapshot.game_id, snapshot.game_version
    raise AssertionError("no snapshot")


async def test_each_shard_serves_the_clients_of_its_own_games(
    gateway_factory: GatewayFactory, keys: Keys
) -> None:
    shards = [await gateway_factory(shard=i, shards=2) for i in range(2)]
    for server, game in ((shards[0], 4), (shards[1], 7)):
        await publish(server, envelope(game, 2))
        client = GameSyncClient(_ws(server), keys.token, affinity=True)
        await client.subscribe(game)
        await client.connect()
        assert client.shards == 2
        assert await _first_snapshot(client) == (game, 2)
        await client.close()
        assert _refused(server) == 0


async def test_an_affine_client_goes_to_its_games_shard_and_a_plain_one_anywhere(
    gateway_factory: GatewayFactory, keys: Keys
) -> None:
    """Pointed at shard 0 for a game of shard 1, only the affine client is turned away: it
    does compute and use the game's path (a proxy would have sent it to shard 1)."""
    server = await gateway_factory(shard=0, shards=2)
    await publish(server, envelope(5, 1))
    plain = GameSyncClient(_ws(server), keys.token)
    await plain.subscribe(5)
    await plain.connect()
    assert await _first_snapshot(plain) == (5, 1)
    await plain.close()

    affine = GameSyncClient(_ws(server), keys.token, affinity=True, backoff_base=60)
    await affine.subscribe(5)
    task = asyncio.create_task(affine.connect())
    # refused, K learnt again, refused again: then it backs off like any reconnect
    await wait_until(lambda: _refused(server) == 2, what="two wrong-shard refusals")
    await wait_until(lambda: affine.status is ClientStatus.RECONNECTING, what="backing off")
    assert affine.error is not None
    assert affine.error.close_code == Close.WRONG_SHARD
    assert _refused(server) == 2  # once at once, then the backoff: no tight loop
    task.cancel()
    await affine.close()


async def test_a_stale_shard_count_is_learnt_again_after_one_refusal(
    gateway_factory: GatewayFactory, keys: Keys
) -> None:
    """The fleet went from 2 to 3 shards: game 4 moved from shard 0 to shard 1."""
    server = await gateway_factory(shard=1, shards=3)
    await publish(server, envelope(4, 9))
    client = GameSyncClient(_ws(server), keys.token, affinity=True, backoff_base=60)
    client.shards = 2  # learnt before the change
    await client.subscribe(4)
    await client.connect()
    assert client.shards == 3
    assert await _first_snapshot(client) == (4, 9)
    assert _refused(server) == 1
    await client.close()


def test_the_affine_path_and_the_announcement_are_found_from_the_gateway_url() -> None:
    assert _affine_url("wss://play.example/ws", 2, 42) == "wss://play.example/ws/s/2/games/42"
    assert (
        _affine_url("ws://127.0.0.1:8000/ws/games/7", 0, 8) == "ws://127.0.0.1:8000/ws/s/0/games/8"
    )
    assert _shards_url("wss://play.example/ws?x=1") == "https://play.example/v1/shards"
    assert _shards_url("ws://127.0.0.1:8000/ws") == "http://127.0.0.1:8000/v1/shards"
