"""Messages and limits over the wire: subscribe, snapshots, errors, close codes (DESIGN §2).

Tests of guarantees both transports give run for each (`feeds.TRANSPORTS`); tests of client
messages run on websockets, the transport that has them.
"""

from __future__ import annotations

import asyncio
import json

import pytest
from feeds import TRANSPORTS, Feed, open_feed
from wire import GatewayFactory, Keys, close_code, connect, envelope, publish, recv_json, recv_until

from gamesync.server import GatewayServer


async def test_subscribe_answers_subscribed_then_the_latest_snapshot(
    gateway: GatewayServer, keys: Keys
) -> None:
    assert (await publish(gateway, envelope(42, 17))).json() == {"published": True}
    async with await connect(gateway, token=keys.token()) as ws:
        await recv_json(ws)
        await ws.send(json.dumps({"type": "subscribe", "gameId": 42}))
        assert await recv_json(ws) == {"type": "subscribed", "version": 1, "gameId": 42}
        assert await recv_json(ws) == {
            "type": "snapshot",
            "version": 1,
            "gameId": 42,
            "gameVersion": 17,
            "data": {"v": 17},
        }


@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_game_path_implies_the_subscription(
    gateway: GatewayServer, keys: Keys, transport: str
) -> None:
    await publish(gateway, envelope(5, 3))
    async with await open_feed(gateway, transport, keys.token(), 5) as feed:
        assert (await feed.recv())["type"] == "welcome"
        assert await feed.recv() == {"type": "subscribed", "version": 1, "gameId": 5}
        assert await feed.recv() == {
            "type": "snapshot",
            "version": 1,
            "gameId": 5,
            "gameVersion": 3,
            "data": {"v": 3},
        }
        await publish(gateway, envelope(5, 4))
        assert (await feed.recv())["gameVersion"] == 4


@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_forbidden_implied_game_closes_4403(
    gateway_factory: GatewayFactory, keys: Keys, transport: str
) -> None:
    server = await gateway_factory(authz="members")
    await publish(server, envelope(5, 1, members=["8"]))
    async with await open_feed(server, transport, keys.token("7"), 5) as feed:
        await feed.recv()
        error = await feed.recv()
        assert error == {
            "type": "error",
            "version": 1,
            "code": "forbidden",
            "message": "forbidden",
            "gameId": 5,
        }
        assert await feed.close_code() == 4403


async def test_forbidden_explicit_subscribe_keeps_the_socket(
    gateway_factory: GatewayFactory, keys: Keys
) -> None:
    server = await gateway_factory(authz="members")
    await publish(server, envelope(5, 1, members=["8"]))
    await publish(server, envelope(6, 1, members=["7"]))
    async with await connect(server, token=keys.token("7")) as ws:
        await recv_json(ws)
        await ws.send(json.dumps({"type": "subscribe", "gameId": 5}))
        error = await recv_json(ws)
        assert (error["code"], error["gameId"]) == ("forbidden", 5)
        await ws.send(json.dumps({"type": "subscribe", "gameId": 404}))
        assert (await recv_json(ws))["code"] == "forbidden"  # no envelope yet: forbidden
        await ws.send(json.dumps({"type": "subscribe", "gameId": 6}))
        assert (await recv_json(ws))["type"] == "subscribed"
        assert (await recv_json(ws))["gameVersion"] == 1


async def test_claim_policy_uses_the_games_claim(
    gateway_factory: GatewayFactory, keys: Keys
) -> None:
    server = await gateway_factory(authz="claim")
    async with await connect(server, token=keys.token("7", games=[1, 2])) as ws:
        await recv_json(ws)
        await ws.send(json.dumps({"type": "subscribe", "gameId": 2}))
        assert (await recv_json(ws))["type"] == "subscribed"
        await ws.send(json.dumps({"type": "subscribe", "gameId": 3}))
        assert (await recv_json(ws))["code"] == "forbidden"


async def test_a_member_removed_from_members_loses_the_game_before_the_next_frame(
    gateway_factory: GatewayFactory, keys: Keys
) -> None:
    """Issue 12.5: a user dropped from `members` kept receiving the game."""
    server = await gateway_factory(authz="members")
    await publish(server, envelope(5, 1, members=["7", "8"]))
    async with (
        await connect(server, "/ws/games/5", token=keys.token("7")) as stays,
        await connect(server, token=keys.token("8")) as leaves,
    ):
        await recv_until(stays, lambda m: m["type"] == "snapshot")
        await recv_json(leaves)
        await leaves.send(json.dumps({"type": "subscribe", "gameId": 5}))
        assert (await recv_json(leaves))["type"] == "subscribed"
        assert (await recv_json(leaves))["gameVersion"] == 1
        await publish(server, envelope(5, 2, members=["7"]))
        assert (await recv_json(leaves)) == {
            "type": "error",
            "version": 1,
            "code": "forbidden",
            "message": "no longer a member of this game",
            "gameId": 5,
        }
        assert (await recv_json(leaves)) == {"type": "unsubscribed", "version": 1, "gameId": 5}
        assert (await recv_json(stays))["gameVersion"] == 2
        await publish(server, envelope(5, 3, members=["7"]))
        assert (await recv_json(stays))["gameVersion"] == 3
        # Nothing of versions 2 and 3 reached the removed member; its socket stays open.
        await leaves.send(json.dumps({"type": "ping"}))
        assert (await recv_json(leaves))["type"] == "pong"
        # Added back, it may subscribe again at once (no cached refusal outlives the change).
        await leaves.send(json.dumps({"type": "subscribe", "gameId": 5}))
        assert (await recv_json(leaves))["code"] == "forbidden"
        await publish(server, envelope(5, 4, members=["7", "8"]))
        await leaves.send(json.dumps({"type": "subscribe", "gameId": 5}))
        assert (await recv_json(leaves))["type"] == "subscribed"
        assert (await recv_json(leaves))["gameVersion"] == 4


async def test_probing_forbidden_game_ids_costs_the_prober_its_socket(
    gateway_factory: GatewayFactory, keys: Keys
) -> None:
    """Issue 12.5: denied subscribes count as bad messages (more than 20 in 10 s: 1008)."""
    server = await gateway_factory(authz="members", bad_message_limit=5)
    async with await connect(server, token=keys.token("7")) as ws:
        await recv_json(ws)
        for game_id in range(100, 106):
            await ws.send(json.dumps({"type": "subscribe", "gameId": game_id}))
            assert (await recv_json(ws))["code"] == "forbidden"
        assert await close_code(ws) == 1008


async def test_unsubscribe_is_acked_and_stops_delivery(gateway: GatewayServer, keys: Keys) -> None:
    async with await connect(gateway, token=keys.token()) as ws:
        await recv_json(ws)
        for game in (1, 2):
            await ws.send(json.dumps({"type": "subscribe", "gameId": game}))
            assert (await recv_json(ws))["type"] == "subscribed"
        await ws.send(json.dumps({"type": "unsubscribe", "gameId": 1}))
        assert await recv_json(ws) == {"type": "unsubscribed", "version": 1, "gameId": 1}
        await publish(gateway, envelope(1, 10))
        await publish(gateway, envelope(2, 11))
        snapshot = await recv_json(ws)
        assert (snapshot["gameId"], snapshot["gameVersion"]) == (2, 11)


async def test_ping_message_is_answered_with_pong(gateway: GatewayServer, keys: Keys) -> None:
    async with await connect(gateway, token=keys.token()) as ws:
        await recv_json(ws)
        await ws.send(json.dumps({"type": "ping"}))
        assert await recv_json(ws) == {"type": "pong", "version": 1}


@pytest.mark.parametrize(
    "frame",
    [
        "{not json",
        "[1,2]",
        '{"type":"dance"}',
        '{"type":"subscribe"}',
        '{"type":"subscribe","gameId":"42"}',
        '{"type":"subscribe","gameId":-1}',
        '{"type":"subscribe","gameId":true}',
        '{"type":"auth","token":""}',
    ],
)
async def test_malformed_message_gets_bad_request_and_the_socket_stays(
    gateway: GatewayServer, keys: Keys, frame: str
) -> None:
    async with await connect(gateway, token=keys.token()) as ws:
        await recv_json(ws)
        await ws.send(frame)
        error = await recv_json(ws)
        assert (error["type"], error["code"]) == ("error", "bad_request")
        await ws.send(json.dumps({"type": "ping"}))
        assert (await recv_json(ws))["type"] == "pong"


async def test_persistent_garbage_closes_1008(gateway: GatewayServer, keys: Keys) -> None:
    async with await connect(gateway, token=keys.token()) as ws:
        await recv_json(ws)
        for _ in range(21):
            await ws.send("garbage")
        assert await close_code(ws) == 1008


async def test_binary_frame_closes_1003(gateway: GatewayServer, keys: Keys) -> None:
    async with await connect(gateway, token=keys.token()) as ws:
        await recv_json(ws)
        await ws.send(b"\x00\x01")
        assert await close_code(ws) == 1003


async def test_frame_over_the_size_limit_closes_1009(gateway: GatewayServer, keys: Keys) -> None:
    async with await connect(gateway, token=keys.token()) as ws:
        await recv_json(ws)
        await ws.send(json.dumps({"type": "ping", "pad": "x" * 5000}))
        assert await close_code(ws) == 1009


async def test_too_many_subscriptions_is_refused_per_game(
    gateway_factory: GatewayFactory, keys: Keys
) -> None:
    server = await gateway_factory(max_subscriptions=2)
    async with await connect(server, token=keys.token()) as ws:
        await recv_json(ws)
        for game in (1, 2, 3):
            await ws.send(json.dumps({"type": "subscribe", "gameId": game}))
        acks = [await recv_json(ws) for _ in range(3)]
        assert [a["type"] for a in acks] == ["subscribed", "subscribed", "error"]
        assert (acks[2]["code"], acks[2]["gameId"]) == ("too_many_subscriptions", 3)


async def test_message_flood_is_rate_limited_then_closed_1008(
    gateway_factory: GatewayFactory, keys: Keys
) -> None:
    server = await gateway_factory(message_rate=1, message_burst=3)
    async with await connect(server, token=keys.token()) as ws:
        await recv_json(ws)
        for _ in range(30):
            await ws.send(json.dumps({"type": "ping"}))
        codes = []
        try:
            while True:
                message = await recv_json(ws)
                codes.append(message.get("code", message["type"]))
        except Exception:  # the close ends the loop
            pass
        assert codes[:3] == ["pong", "pong", "pong"]
        assert "rate_limited" in codes
        assert ws.close_code == 1008


@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_versions_only_increase_under_out_of_order_publishes(
    gateway: GatewayServer, keys: Keys, transport: str
) -> None:
    async with await open_feed(gateway, transport, keys.token(), 9) as feed:
        await feed.until(lambda m: m["type"] == "subscribed")
        answers = []
        for version in (5, 3, 5, 8, 7, 9, 1):
            answers.append((await publish(gateway, envelope(9, version))).json()["published"])
        assert answers == [True, False, False, True, False, True, False]
        got = [(await feed.recv())["gameVersion"] for _ in range(3)]
        assert got == [5, 8, 9]
        await publish(gateway, envelope(9, 10))
        assert (await feed.recv())["gameVersion"] == 10  # nothing else was queued before it


@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_private_viewer_state_goes_only_to_its_user(
    gateway: GatewayServer, keys: Keys, transport: str
) -> None:
    doc = envelope(3, 1, viewers={"7": {"hand": ["AS"]}, "8": {"hand": ["KD"]}})
    await publish(gateway, doc)
    feeds = {user: await open_feed(gateway, transport, keys.token(user), 3) for user in "789"}
    try:
        got = {}
        for user, feed in feeds.items():
            got[user] = await feed.until(lambda m: m["type"] == "snapshot")
        assert got["7"]["viewer"] == {"hand": ["AS"]}
        assert got["8"]["viewer"] == {"hand": ["KD"]}
        assert "viewer" not in got["9"]
        assert got["7"]["data"] == got["9"]["data"] == {"v": 1}
        await publish(gateway, envelope(3, 2, viewers={"8": {"hand": []}}))
        later = {user: await feed.recv() for user, feed in feeds.items()}
        assert "viewer" not in later["7"]
        assert later["8"]["viewer"] == {"hand": []}
    finally:
        for feed in feeds.values():
            await feed.aclose()


@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_idle_socket_without_subscription_closes_4408(
    gateway_factory: GatewayFactory, keys: Keys, transport: str
) -> None:
    """No game left to watch (its one game forbidden): closed as idle."""
    server = await gateway_factory(idle_timeout=0.4, authz="members")
    await publish(server, envelope(5, 1, members=["8"]))
    async with await open_feed(server, transport, keys.token("7"), [5]) as feed:
        assert (await feed.recv())["type"] == "welcome"
        assert (await feed.recv())["code"] == "forbidden"
        assert await feed.close_code() == 4408


@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_concurrent_subscribers_race_still_get_the_latest(
    gateway: GatewayServer, keys: Keys, transport: str
) -> None:
    """Subscribing while publishes stream in: every client ends on the newest version."""
    clients = [await open_feed(gateway, transport, keys.token(str(i)), 77) for i in range(20)]

    async def publisher() -> None:
        for version in range(1, 51):
            await publish(gateway, envelope(77, version))

    async def final_version(feed: Feed) -> int:
        last = -1
        while last < 50:
            message = await feed.recv(timeout=10)
            if message["type"] == "snapshot":
                assert message["gameVersion"] > last
                last = message["gameVersion"]
        return last

    try:
        results = await asyncio.gather(publisher(), *(final_version(feed) for feed in clients))
        assert results[1:] == [50] * 20
    finally:
        for feed in clients:
            await feed.aclose()


async def test_an_internal_failure_closes_1011_without_details(
    gateway: GatewayServer, keys: Keys, monkeypatch: pytest.MonkeyPatch
) -> None:
    async def broken(identity: object, token: str, game_id: int) -> object:
        raise RuntimeError("secret internal detail")

    monkeypatch.setattr(gateway.gateway.authorizer, "decide", broken)
    async with await connect(gateway, token=keys.token()) as ws:
        await recv_json(ws)
        await ws.send(json.dumps({"type": "subscribe", "gameId": 1}))
        assert await close_code(ws) == 1011
        assert ws.close_reason == "internal error"
    async with await connect(gateway, token=keys.token()) as other:
        assert (await recv_json(other))["type"] == "welcome"  # the gateway carries on
