"""Authentication over the wire: the three ways in, refusals, renewal and expiry (DESIGN §2)."""

from __future__ import annotations

import asyncio
import json
import time

import jwt
import pytest
import websockets
from feeds import TRANSPORTS, SseFeed, open_feed
from wire import GatewayFactory, Keys, close_code, connect, recv_json, ws_url

from gamesync.server import GatewayServer


async def test_bearer_header_authenticates_and_welcome_carries_user_and_expiry(
    gateway: GatewayServer, keys: Keys
) -> None:
    token = keys.token("7", ttl=600)
    async with await connect(gateway, token=token) as ws:
        welcome = await recv_json(ws)
    claims = jwt.decode(token, options={"verify_signature": False})
    assert welcome == {
        "type": "welcome",
        "version": 1,
        "userId": "7",
        "heartbeatMs": 20000,
        "expiresAt": claims["exp"],
    }


async def test_query_parameter_authenticates(gateway: GatewayServer, keys: Keys) -> None:
    url = ws_url(gateway, f"/ws?token={keys.token('8')}")
    async with websockets.connect(url) as ws:
        assert (await recv_json(ws))["userId"] == "8"


async def test_first_message_auth_authenticates(gateway: GatewayServer, keys: Keys) -> None:
    async with await connect(gateway) as ws:
        await ws.send(json.dumps({"type": "auth", "token": keys.token("9")}))
        assert (await recv_json(ws))["userId"] == "9"


async def test_other_first_message_counts_as_missing_token(gateway: GatewayServer) -> None:
    async with await connect(gateway) as ws:
        await ws.send(json.dumps({"type": "subscribe", "gameId": 1}))
        error = await recv_json(ws)
        assert error["type"] == "error"
        assert error["code"] == "unauthorized"
        assert await close_code(ws) == 4401


async def test_silence_past_the_auth_timeout_closes_4401(gateway_factory: GatewayFactory) -> None:
    server = await gateway_factory(auth_timeout=0.3)
    async with await connect(server) as ws:
        error = await recv_json(ws)
        assert error["code"] == "unauthorized"
        assert await close_code(ws) == 4401


@pytest.mark.parametrize(
    ("make_token", "code"),
    [
        (lambda k: "not-a-jwt", "unauthorized"),
        (lambda k: k.token("7", ttl=-60), "token_expired"),
        (lambda k: k.token("7")[:-4] + "AAAA", "unauthorized"),
        (
            lambda k: jwt.encode({"sub": "7", "exp": time.time() + 60}, key=None, algorithm="none"),
            "unauthorized",
        ),
    ],
    ids=["garbage", "expired", "bad-signature", "alg-none"],
)
async def test_refused_token_gets_error_frame_then_close_4401(
    gateway: GatewayServer, keys: Keys, make_token: object, code: str
) -> None:
    token = make_token(keys)  # type: ignore[operator]
    async with await connect(gateway, token=token) as ws:
        error = await recv_json(ws)
        assert error["type"] == "error"
        assert error["code"] == code
        assert "Traceback" not in error["message"]
        assert await close_code(ws) == 4401


async def test_renewal_on_a_live_socket_sends_a_new_welcome(
    gateway: GatewayServer, keys: Keys
) -> None:
    async with await connect(gateway, token=keys.token("7", ttl=600)) as ws:
        first = await recv_json(ws)
        fresh = keys.token("7", ttl=1200)
        await ws.send(json.dumps({"type": "auth", "token": fresh}))
        again = await recv_json(ws)
        assert again["type"] == "welcome"
        assert again["expiresAt"] > first["expiresAt"]


@pytest.mark.parametrize(("games", "kept"), [([1], {1}), (None, set())])
async def test_renewal_rechecks_every_subscription_under_the_new_claims(
    gateway_factory: GatewayFactory, keys: Keys, games: list[int] | None, kept: set[int]
) -> None:
    """Issue 12.5: renewing with a token that drops the `games` claim kept every game."""
    server = await gateway_factory(authz="claim")
    async with await connect(server, token=keys.token("7", games=[1, 2])) as ws:
        await recv_json(ws)
        for game_id in (1, 2):
            await ws.send(json.dumps({"type": "subscribe", "gameId": game_id}))
            assert (await recv_json(ws))["type"] == "subscribed"
        renewed = keys.token("7", ttl=1200, games=games) if games else keys.token("7", ttl=1200)
        await ws.send(json.dumps({"type": "auth", "token": renewed}))
        assert (await recv_json(ws))["type"] == "welcome"
        ended = set()
        for _ in range(2 * (2 - len(kept))):
            message = await recv_json(ws)
            if message["type"] == "error":
                assert message["code"] == "forbidden"
            else:
                assert message["type"] == "unsubscribed"
                ended.add(message["gameId"])
        assert ended == {1, 2} - kept
        session = server.gateway.registry.members()[0]
        assert set(session.conn.subscriptions) == kept


async def test_renewal_for_another_user_is_refused(gateway: GatewayServer, keys: Keys) -> None:
    async with await connect(gateway, token=keys.token("7")) as ws:
        await recv_json(ws)
        await ws.send(json.dumps({"type": "auth", "token": keys.token("8")}))
        assert (await recv_json(ws))["code"] == "unauthorized"
        assert await close_code(ws) == 4401


@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_token_expiring_on_a_live_socket_closes_4401_with_token_expired(
    gateway_factory: GatewayFactory, keys: Keys, transport: str
) -> None:
    server = await gateway_factory(leeway_seconds=0, ping_interval=0.2, ping_timeout=5)
    async with await open_feed(server, transport, keys.token("7", ttl=1), 1) as feed:
        error = await feed.until(lambda m: m["type"] == "error", timeout=5)
        assert error["code"] == "token_expired"
        assert await feed.close_code() == 4401


async def test_renewed_token_keeps_the_socket_past_the_first_expiry(
    gateway_factory: GatewayFactory, keys: Keys
) -> None:
    server = await gateway_factory(leeway_seconds=0, ping_interval=0.2, ping_timeout=5)
    async with await connect(server, token=keys.token("7", ttl=1)) as ws:
        welcome = await recv_json(ws)
        await ws.send(json.dumps({"type": "subscribe", "gameId": 1}))
        await ws.send(json.dumps({"type": "auth", "token": keys.token("7", ttl=600)}))
        renewed = await recv_json_skipping(ws, "welcome")
        assert renewed["expiresAt"] > welcome["expiresAt"]
        # Past the first token's expiry the socket still answers.
        await asyncio.sleep(max(0.0, welcome["expiresAt"] + 1.2 - time.time()))
        await ws.send(json.dumps({"type": "ping"}))
        assert (await recv_json_skipping(ws, "pong"))["type"] == "pong"


async def test_disallowed_origin_is_refused_with_http_403(
    gateway_factory: GatewayFactory, keys: Keys
) -> None:
    server = await gateway_factory(allowed_origins="https://nommie.example")
    evil = await open_feed(
        server, "sse", keys.token(), 1, headers={"Origin": "https://evil.example"}
    )
    assert isinstance(evil, SseFeed)
    assert evil.status == 403
    async with await open_feed(
        server, "sse", keys.token(), 1, headers={"Origin": "https://nommie.example"}
    ) as good:
        assert (await good.recv())["type"] == "welcome"
    with pytest.raises(websockets.InvalidStatus) as refused:
        await connect(server, token=keys.token(), origin=websockets.Origin("https://evil.example"))
    assert refused.value.response.status_code == 403
    async with await connect(
        server, token=keys.token(), origin=websockets.Origin("https://nommie.example")
    ) as ws:
        assert (await recv_json(ws))["type"] == "welcome"


@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_too_many_connections_for_one_user_closes_4429(
    gateway_factory: GatewayFactory, keys: Keys, transport: str
) -> None:
    """The per-user limit counts both transports together."""
    server = await gateway_factory(max_connections_per_user=2)
    token = keys.token("7")
    other = "websocket" if transport == "sse" else "sse"
    first = await open_feed(server, transport, token, 1)
    second = await open_feed(server, other, token, 1)
    try:
        for feed in (first, second):
            assert (await feed.recv())["type"] == "welcome"
        async with await open_feed(server, transport, token, 1) as third:
            assert await third.close_code() == 4429
        async with await open_feed(server, transport, keys.token("8"), 1) as other_user:
            assert (await other_user.recv())["type"] == "welcome"
    finally:
        await first.aclose()
        await second.aclose()


async def recv_json_skipping(ws: object, kind: str, timeout: float = 5.0) -> dict[str, object]:
    from wire import recv_until

    return await recv_until(ws, lambda m: m.get("type") == kind, timeout)  # type: ignore[arg-type]
