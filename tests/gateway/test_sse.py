"""The SSE transport's own contract over the wire: how a stream is asked for, framed and ended.

What both transports guarantee (order, conflation, privacy, closes, drain) is tested for both
in the suites of those guarantees (`feeds.TRANSPORTS`).
"""

from __future__ import annotations

import asyncio
import json

import pytest
from feeds import SseFeed, address, open_feed
from wire import GatewayFactory, Keys, envelope, publish, wait_until

from gamesync.server import GatewayServer


async def _sse(
    server: GatewayServer,
    path: str,
    token: str | None,
    *,
    method: str = "GET",
    headers: dict[str, str] | None = None,
) -> SseFeed:
    host, port = address(server)
    return await SseFeed.open(host, port, path, token, method=method, headers=headers)


def _count(server: GatewayServer, name: str, **labels: str) -> float | None:
    return server.gateway.metrics.registry.get_sample_value(name, labels)


async def test_the_token_is_read_from_the_authorization_header_never_the_url(
    gateway: GatewayServer, keys: Keys
) -> None:
    """A `?token=` would end up in proxy and access logs; the stream does not look there."""
    async with await _sse(gateway, f"/sse/games/1?token={keys.token()}", None) as feed:
        assert await feed.recv() == {
            "type": "error",
            "version": 1,
            "code": "unauthorized",
            "message": "missing token",
        }
        assert await feed.close_code() == 4401
    async with await _sse(gateway, "/sse/games/1", "not-a-token") as feed:
        assert (await feed.recv())["message"] == "malformed token"
        assert await feed.close_code() == 4401


async def test_a_stream_is_an_unbuffered_chunked_event_stream(
    gateway: GatewayServer, keys: Keys
) -> None:
    async with await _sse(gateway, "/sse/games/1", keys.token()) as feed:
        assert feed.status == 200
        assert feed.headers["content-type"] == "text/event-stream; charset=utf-8"
        assert feed.headers["cache-control"] == "no-store"
        assert feed.headers["x-accel-buffering"] == "no"
        assert feed.headers["transfer-encoding"] == "chunked"
        assert (await feed.recv())["type"] == "welcome"


async def test_a_cross_origin_page_may_read_the_stream_with_an_authorization_header(
    gateway: GatewayServer, keys: Keys
) -> None:
    origin = {"Origin": "https://nommie.example"}
    preflight = await _sse(
        gateway,
        "/sse/games/1",
        None,
        method="OPTIONS",
        headers={
            **origin,
            "Access-Control-Request-Method": "GET",
            "Access-Control-Request-Headers": "authorization",
        },
    )
    assert preflight.status == 204
    assert preflight.headers["access-control-allow-origin"] == "https://nommie.example"
    assert preflight.headers["access-control-allow-headers"] == "authorization"
    assert preflight.headers["access-control-allow-methods"] == "GET"
    async with await _sse(gateway, "/sse/games/1", keys.token(), headers=origin) as feed:
        assert feed.headers["access-control-allow-origin"] == "https://nommie.example"
        assert (await feed.recv())["type"] == "welcome"


async def test_an_origin_outside_the_allow_list_gets_no_preflight_either(
    gateway_factory: GatewayFactory,
) -> None:
    server = await gateway_factory(allowed_origins="https://nommie.example")
    preflight = await _sse(
        server, "/sse/games/1", None, method="OPTIONS", headers={"Origin": "https://evil.example"}
    )
    assert preflight.status == 403
    assert "access-control-allow-origin" not in preflight.headers
    refused = {"reason": "origin", "transport": "sse"}
    assert _count(server, "gamesync_handshakes_refused_total", **refused) == 0  # no stream yet
    stream = await _sse(server, "/sse/games/1", None, headers={"Origin": "https://evil.example"})
    assert stream.status == 403
    assert _count(server, "gamesync_handshakes_refused_total", **refused) == 1


@pytest.mark.parametrize(
    ("path", "method", "status", "reason"),
    [
        ("/sse", "GET", 400, "name the games: /sse?games=1,2"),
        ("/sse?games=", "GET", 400, "name the games: /sse?games=1,2"),
        ("/sse?games=1,x", "GET", 400, "'games' must be game ids"),
        ("/sse?games=-1", "GET", 400, "'games' must be game ids"),
        ("/sse?games=" + ",".join(str(g) for g in range(65)), "GET", 400, "at most 64 games"),
        ("/sse/games/1", "POST", 405, "use GET"),
    ],
)
async def test_a_malformed_request_is_refused_with_plain_http(
    gateway: GatewayServer, keys: Keys, path: str, method: str, status: int, reason: str
) -> None:
    feed = await _sse(gateway, path, keys.token(), method=method)
    assert feed.status == status
    assert feed.body.decode().startswith(reason)
    assert len(gateway.gateway.registry) == 0


async def test_a_stream_needs_http_1_1(gateway: GatewayServer, keys: Keys) -> None:
    reader, writer = await asyncio.open_connection(*address(gateway))
    try:
        writer.write(
            f"GET /sse/games/1 HTTP/1.0\r\nAuthorization: Bearer {keys.token()}\r\n\r\n".encode()
        )
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
        assert head.split(b" ")[1] == b"505"
    finally:
        writer.close()


async def test_one_stream_carries_several_games_in_order(
    gateway: GatewayServer, keys: Keys
) -> None:
    await publish(gateway, envelope(1, 4))
    async with await _sse(gateway, "/sse?games=1,2,1", keys.token()) as feed:
        assert (await feed.recv())["type"] == "welcome"
        seen = [await feed.recv() for _ in range(3)]
        assert [(m["type"], m["gameId"]) for m in seen] == [
            ("subscribed", 1),
            ("snapshot", 1),
            ("subscribed", 2),
        ]
        await publish(gateway, envelope(2, 1))
        await publish(gateway, envelope(1, 5))
        later = [await feed.recv() for _ in range(2)]
        assert [(m["gameId"], m["gameVersion"]) for m in later] == [(2, 1), (1, 5)]


async def test_heartbeats_are_comments_and_a_quiet_stream_stays_open(
    gateway_factory: GatewayFactory, keys: Keys
) -> None:
    """The client cannot answer a ping: the server writes a comment, and no 4408 follows."""
    server = await gateway_factory(ping_interval=0.1, ping_timeout=0.2)
    async with await _sse(server, "/sse/games/1", keys.token()) as feed:
        await feed.until(lambda m: m["type"] == "subscribed")
        loop = asyncio.get_running_loop()
        start = loop.time()
        await feed.wait_comments(5)
        # Well past ping_interval + ping_timeout with no answer possible, and still open.
        assert loop.time() - start >= 0.3
        assert not feed.ended
        assert len(server.gateway.registry) == 1
        await publish(server, envelope(1, 1))
        assert (await feed.recv())["gameVersion"] == 1


async def test_a_published_snapshot_with_line_breaks_arrives_whole(
    gateway: GatewayServer, keys: Keys
) -> None:
    """A snapshot keeps the bytes it was published with; line breaks may be among them."""
    pretty = json.dumps(envelope(1, 1, snapshot={"a": [1, 2], "b": {"c": "x\\ny"}}), indent=2)
    assert "\n" in pretty
    await publish(gateway, pretty.replace("\n", "\r\n").encode(), game_id=1)
    async with await _sse(gateway, "/sse/games/1", keys.token()) as feed:
        snapshot = await feed.until(lambda m: m["type"] == "snapshot")
        assert snapshot["data"] == {"a": [1, 2], "b": {"c": "x\\ny"}}


async def test_a_client_hanging_up_ends_its_session_and_counts_by_transport(
    gateway: GatewayServer, keys: Keys
) -> None:
    feed = await _sse(gateway, "/sse/games/1", keys.token())
    await feed.until(lambda m: m["type"] == "subscribed")
    await publish(gateway, envelope(1, 1))
    await feed.until(lambda m: m["type"] == "snapshot")
    assert _count(gateway, "gamesync_connections", state="open", transport="sse") == 1
    assert _count(gateway, "gamesync_connections", state="open", transport="websocket") == 0
    assert _count(gateway, "gamesync_deliveries_total", transport="sse") == 1
    assert _count(gateway, "gamesync_deliveries_total", transport="websocket") == 0
    await feed.aclose()
    registry = gateway.gateway.registry
    await wait_until(lambda: len(registry) == 0 and registry.lingering == 0, what="detach")
    await wait_until(
        lambda: (
            _count(gateway, "gamesync_closes_total", code="1001", reason="client", transport="sse")
            == 1
        ),
        what="the close counted",
    )
    assert gateway.gateway.hub.subscription_count == 0


async def test_a_full_pod_and_paced_admission_end_a_stream_as_they_close_a_websocket(
    gateway_factory: GatewayFactory, keys: Keys
) -> None:
    server = await gateway_factory(max_connections=1)
    async with await open_feed(server, "sse", keys.token("1"), 1) as first:
        assert (await first.recv())["type"] == "welcome"
        async with await open_feed(server, "sse", keys.token("2"), 1) as second:
            assert await second.close_code() == 1013
    paced = await gateway_factory(admission_rate=1, admission_burst=1)
    async with await open_feed(paced, "sse", keys.token("1"), 1) as first:
        assert (await first.recv())["type"] == "welcome"
        async with await open_feed(paced, "sse", keys.token("2"), 1) as held_back:
            hint = await held_back.recv()
            assert (hint["type"], hint["reason"]) == ("reconnect", "busy")
            assert hint["retryAfterMs"] > 0
            assert await held_back.close_code() == 1013


async def test_a_member_removed_from_members_loses_the_game_and_nothing_more(
    gateway_factory: GatewayFactory, keys: Keys
) -> None:
    server = await gateway_factory(authz="members")
    await publish(server, envelope(5, 1, members=["7", "8"]))
    async with (
        await open_feed(server, "sse", keys.token("7"), 5) as stays,
        await open_feed(server, "sse", keys.token("8"), [5]) as leaves,
    ):
        await stays.until(lambda m: m["type"] == "snapshot")
        assert (await leaves.until(lambda m: m["type"] == "snapshot"))["gameVersion"] == 1
        await publish(server, envelope(5, 2, members=["7"]))
        assert (await leaves.recv())["message"] == "no longer a member of this game"
        assert await leaves.recv() == {"type": "unsubscribed", "version": 1, "gameId": 5}
        await publish(server, envelope(5, 3, members=["7"]))
        assert (await stays.recv())["gameVersion"] == 2
        assert (await stays.recv())["gameVersion"] == 3
        # Nothing of versions 2 and 3: welcome, subscribed, snapshot, error, unsubscribed.
        session = next(m for m in server.gateway.registry.members() if m.conn.user_id == "8")
        assert session.conn.subscriptions == {}
        assert session.conn.frames_out == 5
