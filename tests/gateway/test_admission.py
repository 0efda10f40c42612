"""Who gets in, over the wire: caps before authentication, paced admission, closing sockets."""

from __future__ import annotations

import asyncio
import json
from urllib.parse import urlsplit

from rawws import Frame, RawClient
from wire import GatewayFactory, Keys, close_code, connect, envelope, publish, recv_json, wait_until

from gamesync.server import GatewayServer


def _address(server: GatewayServer) -> tuple[str, int]:
    parts = urlsplit(server.public_url)
    assert parts.hostname is not None
    assert parts.port is not None
    return parts.hostname, parts.port


def _close_reason(frame: Frame) -> str:
    return frame.payload[2:].decode()


async def test_unauthenticated_connections_beyond_the_pod_cap_are_closed_1013(
    gateway_factory: GatewayFactory, keys: Keys
) -> None:
    """Issue 12.2: sockets without a token waited out the auth timeout, as many as came."""
    server = await gateway_factory(max_pending_connections=2, auth_timeout=30)
    waiting = [await RawClient.connect(*_address(server), "/ws", None) for _ in range(2)]
    extra = await RawClient.connect(*_address(server), "/ws", None)
    try:
        close = await extra.read_until_close()
        assert close.close_code == 1013
        assert _close_reason(close) == "too many unauthenticated connections"
        # Those that authenticate make room; authenticated connections are not capped here.
        waiting[0].send_text(json.dumps({"type": "auth", "token": keys.token("7")}))
        assert json.loads((await waiting[0].read_frame()).payload)["type"] == "welcome"
        async with await connect(server, token=keys.token("8")) as ws:
            assert (await recv_json(ws))["type"] == "welcome"
        gauge = server.gateway.metrics.registry.get_sample_value("gamesync_pending_connections")
        assert gauge == 1
    finally:
        for client in (*waiting, extra):
            client.close()


async def test_unauthenticated_connections_are_capped_per_client_address(
    gateway_factory: GatewayFactory,
) -> None:
    server = await gateway_factory(max_pending_per_address=2, auth_timeout=30)
    host, port = _address(server)
    clients = [await RawClient.connect(host, port, "/ws", None) for _ in range(2)]
    try:
        third = await RawClient.connect(host, port, "/ws", None)
        clients.append(third)
        close = await third.read_until_close()
        assert close.close_code == 1013
        assert _close_reason(close) == "too many unauthenticated connections from this address"
        top = server.gateway.metrics.registry.get_sample_value(
            "gamesync_pending_connections_top_address"
        )
        assert top == 2
    finally:
        for client in clients:
            client.close()


async def test_behind_a_trusted_proxy_the_forwarded_address_is_the_clients(
    gateway_factory: GatewayFactory,
) -> None:
    """Every connection comes from the proxy's address; the header's last entry names the client."""
    server = await gateway_factory(
        max_pending_per_address=1, auth_timeout=30, client_address_header="X-Forwarded-For"
    )
    host, port = _address(server)

    async def through_proxy(client_address: str) -> RawClient:
        # The first entry is whatever the client claimed; the proxy appended the real one.
        forwarded = {"X-Forwarded-For": f"6.6.6.6, {client_address}"}
        return await RawClient.connect(host, port, "/ws", None, headers=forwarded)

    clients = [await through_proxy("203.0.113.1"), await through_proxy("203.0.113.2")]
    try:
        same = await through_proxy("203.0.113.1")
        clients.append(same)
        assert (await same.read_until_close()).close_code == 1013
        # The other two still wait to authenticate.
        await wait_until(lambda: len(server.gateway.registry) == 2, what="the refused one gone")
        assert server.gateway.registry.pending == 2
    finally:
        for client in clients:
            client.close()


async def test_a_crowd_is_admitted_at_the_paced_rate_and_the_rest_told_when_to_return(
    gateway_factory: GatewayFactory, keys: Keys
) -> None:
    """Issue 12's reconnect storm: those held back get a `reconnect` hint and a clean 1013."""
    server = await gateway_factory(admission_rate=2, admission_burst=2)
    admitted = [await connect(server, token=keys.token(str(i))) for i in range(2)]

    async def held_back(user: str) -> int:
        async with await connect(server, token=keys.token(user)) as ws:
            hint = await recv_json(ws)
            assert (hint["type"], hint["reason"]) == ("reconnect", "busy")
            assert await close_code(ws) == 1013
            return int(hint["retryAfterMs"])

    try:
        for ws in admitted:
            assert (await recv_json(ws))["type"] == "welcome"
        hints = sorted(await asyncio.gather(*(held_back(f"late-{i}") for i in range(3))))
        # Each one held back has a slot of its own, 1/rate (500 ms) after the one before.
        assert hints[0] > 0
        assert hints[1] - hints[0] >= 400
        assert hints[2] - hints[1] >= 400
        closes = server.gateway.metrics.registry.get_sample_value(
            "gamesync_closes_total",
            {"code": "1013", "reason": "admissions paced, retry later", "transport": "websocket"},
        )
        assert closes == 3
        # Back at its slot, a client gets in.
        await asyncio.sleep(hints[0] / 1000)  # the client's own wait, as a real client does
        async with await connect(server, token=keys.token("back")) as ws:
            assert (await recv_json(ws))["type"] == "welcome"
    finally:
        for ws in admitted:
            await ws.close()


async def test_a_closing_socket_still_counts_toward_the_pod_until_it_is_gone(
    gateway_factory: GatewayFactory, keys: Keys
) -> None:
    """Issue 12.2: a session that ended left its socket (and buffer) behind, counted nowhere."""
    server = await gateway_factory(max_connections=1, slow_client_seconds=0.3, close_timeout=1)
    gw = server.gateway
    slow = await RawClient.connect(
        *_address(server), "/ws/games/4", keys.token("slow"), rcvbuf=4096, limit=1024
    )
    try:
        await wait_until(lambda: 4 in gw.hub.topics and gw.hub.topics[4].subscribers, what="join")
        session = gw.registry.members()[0]
        socket = session.conn.socket
        big = "y" * 300_000
        version = 0
        async with asyncio.timeout(15):
            while socket.unwritable_since is None:
                version += 1
                await publish(server, envelope(4, version, snapshot={"pad": big}))
        # Backpressure both ways: nothing more is read from a socket we cannot write to.
        assert not socket.transport.is_reading()
        await wait_until(lambda: len(gw.registry) == 0, timeout=10, what="the session ended")
        # Its transport still holds the buffer (for up to a second): the pod is still full.
        assert not socket.is_gone
        async with await connect(server, token=keys.token("next")) as ws:
            assert await close_code(ws) == 1013
        await wait_until(lambda: socket.is_gone, timeout=5, what="the transport dropped")
        assert gw.registry.lingering == 0
        async with await connect(server, token=keys.token("after")) as ws:
            assert (await recv_json(ws))["type"] == "welcome"
    finally:
        slow.close()
