"""Heartbeats, slow clients and conflation, key reload: the connection lifecycle over the wire."""

from __future__ import annotations

import asyncio
import json
import logging
import os
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from feeds import TRANSPORTS, SseFeed, open_feed
from rawws import RawClient
from websockets.asyncio.client import ClientConnection
from wire import (
    GatewayFactory,
    Keys,
    close_code,
    connect,
    envelope,
    publish,
    recv_json,
    recv_until,
    wait_until,
)

from gamesync.keys import generate_key, sign_token
from gamesync.server import GatewayServer


def _address(server: GatewayServer) -> tuple[str, int]:
    parts = urlsplit(server.public_url)
    assert parts.hostname is not None
    assert parts.port is not None
    return parts.hostname, parts.port


async def test_ping_frames_are_sent_and_a_missing_pong_closes_4408(
    gateway_factory: GatewayFactory, keys: Keys
) -> None:
    server = await gateway_factory(ping_interval=0.2, ping_timeout=0.3)
    async with await RawClient.connect(*_address(server), "/ws/games/1", keys.token()) as client:
        seen_ping = False
        close = None
        async with asyncio.timeout(5):
            while close is None:
                frame = await client.read_frame()
                seen_ping = seen_ping or frame.opcode == 0x9
                if frame.opcode == 0x8:
                    close = frame
        assert seen_ping
        assert close.close_code == 4408


async def test_a_client_answering_pings_stays_connected(
    gateway_factory: GatewayFactory, keys: Keys
) -> None:
    server = await gateway_factory(ping_interval=0.1, ping_timeout=0.2)
    async with await connect(server, "/ws/games/1", token=keys.token()) as ws:
        await recv_until(ws, lambda m: m["type"] == "subscribed")
        gw = server.gateway
        session = next(iter(gw.registry.members()))
        # Several ping rounds pass (the websockets client answers them) and we stay open.
        await wait_until(lambda: session.conn.ping_sent_at is not None, what="a first ping")
        first_ping = session.conn.ping_sent_at
        await wait_until(
            lambda: (session.conn.ping_sent_at or 0) > (first_ping or 0) + 0.3, what="later pings"
        )
        await publish(server, envelope(1, 1))
        assert (await recv_until(ws, lambda m: m["type"] == "snapshot"))["gameVersion"] == 1


@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_slow_client_gets_only_the_newest_snapshot_and_others_are_unaffected(
    gateway_factory: GatewayFactory, keys: Keys, transport: str
) -> None:
    server = await gateway_factory(slow_client_seconds=30)
    slow = await open_feed(server, transport, keys.token("slow"), 4, rcvbuf=4096)
    fast = await connect(server, "/ws/games/4", token=keys.token("fast"), max_size=None)
    try:
        await recv_until(fast, lambda m: m["type"] == "subscribed")
        gw = server.gateway
        await wait_until(lambda: len(gw.hub.topics.get(4, _Empty).subscribers) == 2)
        slow_session = next(s for s in gw.registry.members() if s.conn.user_id == "slow")
        big = "x" * 200_000
        last = 0
        for version in range(1, 41):
            await publish(server, envelope(4, version, snapshot={"pad": big, "v": version}))
            last = version
            snap = await recv_until(fast, lambda m: m["type"] == "snapshot", timeout=10)
            assert snap["gameVersion"] == version  # the fast client keeps up, in order
        await wait_until(
            lambda: slow_session.socket.unwritable_since is not None, what="backpressure"
        )
        # Parked: at most one pending frame for the one game, however many were published.
        assert slow_session.conn.backlog <= 1
        assert gw.hub.stats.conflated > 0
        # Once the slow client reads, it converges on the newest version, in increasing order.
        versions = []
        async with asyncio.timeout(20):
            while not versions or versions[-1] != last:
                message = await slow.recv(timeout=10)
                if message["type"] == "snapshot":
                    versions.append(message["gameVersion"])
        assert versions == sorted(set(versions))
        assert len(versions) < last  # some were conflated away
    finally:
        await slow.aclose()
        await fast.close()


@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_client_that_cannot_drain_is_closed_1013(
    gateway_factory: GatewayFactory, keys: Keys, transport: str
) -> None:
    server = await gateway_factory(slow_client_seconds=0.5)
    slow = await open_feed(server, transport, keys.token("slow"), 4, rcvbuf=4096)
    try:
        gw = server.gateway
        await wait_until(lambda: 4 in gw.hub.topics and gw.hub.topics[4].subscribers, what="join")
        big = "y" * 300_000
        version = 0
        async with asyncio.timeout(15):
            while len(gw.registry):
                version += 1
                await publish(server, envelope(4, version, snapshot={"pad": big}))
                await asyncio.sleep(0.05)  # paces the publisher, not a synchronisation
        assert gw.hub.stats.slow_closes == 1
        closes = gw.metrics.registry.get_sample_value(
            "gamesync_closes_total",
            {"code": "1013", "reason": "client too slow", "transport": transport},
        )
        assert closes == 1.0
    finally:
        await slow.aclose()


async def test_key_reload_keeps_live_sockets_and_accepts_the_new_key(
    gateway_factory: GatewayFactory, keys: Keys, tmp_path: Path
) -> None:
    # The kubelet layout: jwks.json -> ..data/jwks.json, ..data -> a timestamped directory.
    mount = tmp_path / "mount"
    first = mount / "..2026_11_26_1"
    first.mkdir(parents=True)
    (first / "jwks.json").write_text(keys.jwks_path.read_text())
    (mount / "..data").symlink_to(first.name)
    (mount / "jwks.json").symlink_to("..data/jwks.json")
    server = await gateway_factory(keys=mount / "jwks.json")
    gw = server.gateway
    async with await connect(server, "/ws/games/1", token=keys.token("7")) as old:
        await recv_until(old, lambda m: m["type"] == "subscribed")
        private, public = generate_key("ES256", kid="test-2")
        old_public = json.loads(keys.jwks_path.read_text())["keys"][0]
        second = mount / "..2026_11_26_2"
        second.mkdir()
        (second / "jwks.json").write_text(json.dumps({"keys": [old_public, public]}))
        tmp_link = mount / "..data_tmp"
        tmp_link.symlink_to(second.name)
        os.replace(tmp_link, mount / "..data")
        await wait_until(lambda: gw.keys.kids == ["test-1", "test-2"], what="reload")
        new_token = sign_token({"keys": [private], "active": "test-2"}, "8")
        async with await connect(server, token=new_token) as new:
            assert (await recv_json(new))["userId"] == "8"
        # A broken file is refused; the last good set stays and sockets stay.
        third = mount / "..2026_11_26_3"
        third.mkdir()
        (third / "jwks.json").write_text("{not json")
        tmp_link.symlink_to(third.name)
        os.replace(tmp_link, mount / "..data")
        await wait_until(lambda: gw.keys.reload_failures == 1, what="refusal")
        assert gw.keys.kids == ["test-1", "test-2"]
        await publish(server, envelope(1, 2))
        assert (await recv_until(old, lambda m: m["type"] == "snapshot"))["gameVersion"] == 2
        assert old.close_code is None


async def test_a_key_removed_from_the_jwks_closes_the_sessions_it_signed_spread_out(
    gateway_factory: GatewayFactory, keys: Keys
) -> None:
    """Issue 12.4: removing a leaked key from the JWKS left its sessions connected for good."""
    private, public = generate_key("ES256", kid="leaked")
    kept_public = json.loads(keys.jwks_path.read_text())["keys"][0]
    keys.jwks_path.write_text(json.dumps({"keys": [kept_public, public]}))
    server = await gateway_factory()
    gw = server.gateway
    leaked_signer = {"keys": [private], "active": "leaked"}
    leaked = [await connect(server, token=sign_token(leaked_signer, f"l{i}")) for i in range(6)]
    kept = await connect(server, token=keys.token("k"))
    try:
        for ws in (*leaked, kept):
            assert (await recv_json(ws))["type"] == "welcome"
        keys.jwks_path.write_text(json.dumps({"keys": [kept_public]}))
        await wait_until(lambda: gw.keys.kids == ["test-1"], what="the reload")
        loop = asyncio.get_running_loop()
        removed_at = loop.time()

        async def closed(ws: ClientConnection) -> float:
            error = await recv_json(ws, timeout=10)
            # token_expired: the client asks its provider for a fresh token (DESIGN §2).
            assert (error["type"], error["code"]) == ("error", "token_expired")
            assert await close_code(ws) == 4401
            assert ws.close_reason == "signing key revoked"
            return loop.time() - removed_at

        closed_at = await asyncio.gather(*(closed(ws) for ws in leaked))
        # Within the spread (5 s) and one sweep (1 s), and not all at the same instant.
        assert max(closed_at) <= 5 + 1 + 0.5
        assert max(closed_at) - min(closed_at) >= 0.5
        assert kept.close_code is None
        revoked = gw.metrics.registry.get_sample_value(
            "gamesync_auth_failures_total", {"reason": "signing key revoked on a live connection"}
        )
        assert revoked == 6
        async with await connect(server, token=sign_token(leaked_signer, "again")) as retry:
            assert (await recv_json(retry))["message"] == "unknown key id"
    finally:
        for ws in (*leaked, kept):
            await ws.close()


class _Empty:
    subscribers: tuple[()] = ()


@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_a_drain_sends_a_reconnect_hint_then_refuses_new_connections_503(
    gateway_factory: GatewayFactory, keys: Keys, transport: str
) -> None:
    import websockets

    server = await gateway_factory(drain_seconds=0.5)
    async with await open_feed(server, transport, keys.token(), 1) as feed:
        await feed.until(lambda m: m["type"] == "subscribed")
        drain = asyncio.create_task(server.gateway.drain())
        reconnect = await feed.recv()
        assert reconnect["type"] == "reconnect"
        assert reconnect["reason"] == "draining"
        assert 0 < reconnect["retryAfterMs"] <= 2000
        assert await feed.close_code() == 1012
        await drain
    if transport == "sse":
        refused_stream = await open_feed(server, transport, keys.token(), 1)
        assert isinstance(refused_stream, SseFeed)
        assert refused_stream.status == 503
        return
    with pytest.raises(websockets.InvalidStatus) as refused:
        await connect(server, token=keys.token())
    assert refused.value.response.status_code == 503


async def test_connections_waiting_for_their_drain_batch_count_as_draining(
    gateway_factory: GatewayFactory, keys: Keys
) -> None:
    # 4 connections over 6 s: one batch of 1 every 1.35 s, the first at once.
    server = await gateway_factory(drain_seconds=6)
    clients = [await connect(server, token=keys.token(str(i))) for i in range(4)]
    gw = server.gateway

    def gauge(state: str) -> float:
        value = gw.metrics.registry.get_sample_value(
            "gamesync_connections", {"state": state, "transport": "websocket"}
        )
        return -1 if value is None else value

    try:
        for ws in clients:
            assert (await recv_json(ws))["type"] == "welcome"
        assert (gauge("open"), gauge("draining")) == (4, 0)
        drain = asyncio.create_task(gw.drain())
        await wait_until(lambda: gauge("open") == 0, what="the drain to begin")
        assert gauge("draining") == 3  # the first batch is closing; the rest wait their turn
        await wait_until(lambda: gauge("draining") == 2, what="the second batch")
        drain.cancel()
    finally:
        for ws in clients:
            await ws.close()


async def test_draining_warns_only_when_there_are_connections_to_drain(
    gateway_factory: GatewayFactory, keys: Keys, caplog: pytest.LogCaptureFixture
) -> None:
    def drain_records() -> list[logging.LogRecord]:
        return [r for r in caplog.records if r.getMessage().startswith("draining ")]

    idle = await gateway_factory(drain_seconds=0.2)
    with caplog.at_level(logging.INFO, logger="gamesync.gateway"):
        await idle.gateway.drain()
    [record] = drain_records()
    assert (record.levelname, record.getMessage().split(" over")[0]) == (
        "INFO",
        "draining 0 connections",
    )
    caplog.clear()
    busy = await gateway_factory(drain_seconds=0.2)
    async with await connect(busy, token=keys.token()) as ws:
        await recv_json(ws)
        with caplog.at_level(logging.INFO, logger="gamesync.gateway"):
            await busy.gateway.drain()
    [record] = drain_records()
    assert (record.levelname, record.getMessage().split(" over")[0]) == (
        "WARNING",
        "draining 1 connections",
    )
