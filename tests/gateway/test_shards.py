"""Game-affine placement (DESIGN §2): the shard function, the settings, and the endpoints."""

from __future__ import annotations

import httpx
import pytest
from feeds import SseFeed, address
from wire import GatewayFactory, Keys, close_code, connect, envelope, publish, recv_json, recv_until

from gamesync.errors import ConfigError
from gamesync.protocol import CLOSE_CLASSES, Close, Reaction
from gamesync.settings import load_settings
from gamesync.shards import WRONG_SHARD_STATUS, ShardIdentity, shard_of

# the shard function --------------------------------------------------------------------------


def test_a_game_is_on_its_id_modulo_the_shard_count() -> None:
    assert [shard_of(game, 4) for game in range(8)] == [0, 1, 2, 3, 0, 1, 2, 3]
    assert shard_of(2**63 - 1, 4) == 3  # the largest id the protocol allows; exact, no float
    assert {shard_of(game, 1) for game in range(100)} == {0}


def test_sequential_game_ids_spread_evenly_over_the_shards() -> None:
    counts = [0] * 5
    for game in range(10_000, 11_000):
        counts[shard_of(game, 5)] += 1
    assert counts == [200] * 5


@pytest.mark.parametrize(("game", "shards"), [(-1, 4), (1, 0), (1, -2)])
def test_the_shard_function_refuses_what_has_no_shard(game: int, shards: int) -> None:
    with pytest.raises(ValueError, match=r"must be at least 1|is non-negative"):
        shard_of(game, shards)


def test_a_shard_serves_only_its_own_games_on_its_own_path() -> None:
    second = ShardIdentity(1, 4)
    assert second.refusal(1, 5) is None
    assert second.refusal(1, 6) == "wrong shard: game 6 is on shard 2 of 4, this is 1"
    assert second.refusal(2, 6) is not None  # the right shard for the game, but not this pod
    assert second.refusal(0, 4) is not None
    assert second.announcement() == {"shards": 4, "shard": 1}
    assert len((ShardIdentity(255, 256).refusal(0, 2**63 - 1) or "").encode()) <= 123


@pytest.mark.parametrize(("index", "count"), [(4, 4), (-1, 4), (0, 0)])
def test_a_shard_index_outside_the_count_is_refused(index: int, count: int) -> None:
    with pytest.raises(ValueError, match="0 ≤ shard < shards"):
        ShardIdentity(index, count)


# settings ----------------------------------------------------------------------------------------


def test_the_default_is_one_shard_that_serves_every_game(keys: Keys) -> None:
    settings = load_settings(keys=keys.jwks_path)
    assert (settings.shard, settings.shards) == (0, 1)
    assert settings.shard_identity.refusal(0, 12345) is None


@pytest.mark.parametrize(
    ("given", "problem"),
    [
        ({"shard": 4, "shards": 4}, "--shard 4 is not below --shards 4"),
        ({"shard": 1}, "--shard 1 is not below --shards 1"),
        ({"shards": 0}, "shards: Input should be greater than or equal to 1"),
        ({"shard": -1, "shards": 2}, "shard: Input should be greater than or equal to 0"),
    ],
)
def test_a_shard_outside_the_fleet_fails_at_start_up(
    keys: Keys, given: dict[str, int], problem: str
) -> None:
    with pytest.raises(ConfigError, match=problem):
        load_settings(keys=keys.jwks_path, **given)


def test_the_shard_is_read_from_the_environment(
    keys: Keys, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("GAMESYNC_SHARD", "2")
    monkeypatch.setenv("GAMESYNC_SHARDS", "3")
    assert load_settings(keys=keys.jwks_path).shard_identity == ShardIdentity(2, 3)


# the endpoints -----------------------------------------------------------------------------------


def test_wrong_shard_is_its_own_close_code_telling_clients_to_relearn_the_shards() -> None:
    assert Close.WRONG_SHARD == 4421
    assert CLOSE_CLASSES[Close.WRONG_SHARD].reaction is Reaction.RESHARD
    assert WRONG_SHARD_STATUS == 421


async def test_the_gateway_announces_its_shard_count_to_anyone(
    gateway_factory: GatewayFactory,
) -> None:
    server = await gateway_factory(shard=2, shards=3)
    async with httpx.AsyncClient() as http:
        answer = await http.get(server.public_url + "/v1/shards", headers={"Origin": "https://x"})
    assert answer.status_code == 200
    assert answer.json() == {"shards": 3, "shard": 2}
    assert answer.headers["access-control-allow-origin"] == "*"


async def test_a_game_affine_socket_on_its_shard_gets_the_game(
    gateway_factory: GatewayFactory, keys: Keys
) -> None:
    server = await gateway_factory(shard=1, shards=4)
    await publish(server, envelope(5, 3))
    ws = await connect(server, "/ws/s/1/games/5", token=keys.token())
    assert (await recv_json(ws))["type"] == "welcome"
    snapshot = await recv_until(ws, lambda m: m["type"] == "snapshot")
    assert (snapshot["gameId"], snapshot["gameVersion"]) == (5, 3)
    await ws.close()


@pytest.mark.parametrize("path", ["/ws/s/1/games/6", "/ws/s/2/games/6", "/ws/s/9/games/9"])
async def test_a_game_affine_socket_for_another_shard_is_closed_4421_before_auth(
    gateway_factory: GatewayFactory, path: str
) -> None:
    server = await gateway_factory(shard=1, shards=4)
    ws = await connect(server, path)  # no token: the refusal comes first
    assert await close_code(ws) == Close.WRONG_SHARD
    assert ws.close_reason is not None
    assert ws.close_reason.startswith("wrong shard: game")
    refused = server.gateway.metrics.registry.get_sample_value(
        "gamesync_handshakes_refused_total", {"reason": "wrong_shard", "transport": "websocket"}
    )
    assert refused == 1
    assert len(server.gateway.registry) == 0


async def test_spread_paths_keep_working_on_every_shard(
    gateway_factory: GatewayFactory, keys: Keys
) -> None:
    server = await gateway_factory(shard=1, shards=4)
    for path in ("/ws", "/ws/games/6"):
        ws = await connect(server, path, token=keys.token())
        assert (await recv_json(ws))["type"] == "welcome"
        await ws.close()


async def test_a_game_affine_stream_for_another_shard_is_refused_421(
    gateway_factory: GatewayFactory, keys: Keys
) -> None:
    server = await gateway_factory(shard=0, shards=2)
    host, port = address(server)
    refused = await SseFeed.open(host, port, "/sse/s/0/games/7", keys.token())
    assert refused.status == WRONG_SHARD_STATUS
    async with await SseFeed.open(host, port, "/sse/s/0/games/8", keys.token()) as feed:
        assert feed.status == 200
        assert (await feed.recv())["type"] == "welcome"
        assert (await feed.recv()) == {"type": "subscribed", "version": 1, "gameId": 8}
