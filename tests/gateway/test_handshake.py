"""gamesync.handshake over the wire: a request head is bounded in time, bytes and number."""

from __future__ import annotations

import asyncio
from urllib.parse import urlsplit

import pytest
import websockets
from websockets.exceptions import InvalidStatus
from wire import GatewayFactory, Keys, wait_until, ws_url

from gamesync.bench import wire
from gamesync.handshake import HEADS_PER_TURN, MAX_HEAD_BYTES, STALLED_AFTER, HeadTurns
from gamesync.server import GatewayServer

HEAD_TIMEOUT = 3.0


def _refused(server: GatewayServer, reason: str) -> float:
    value = server.gateway.metrics.registry.get_sample_value(
        "gamesync_handshakes_refused_total", {"reason": reason, "transport": "websocket"}
    )
    return value or 0.0


async def _open_head(server: GatewayServer) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    """A connection that sent the start of an upgrade request, never its end."""
    parts = urlsplit(server.public_url)
    assert parts.hostname is not None
    assert parts.port is not None
    reader, writer = await asyncio.open_connection(parts.hostname, parts.port)
    writer.write(b"GET /ws HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\n")
    return reader, writer


async def _status(reader: asyncio.StreamReader, timeout: float) -> bytes:
    async with asyncio.timeout(timeout):
        return (await reader.readline())[:12]


async def test_a_request_head_never_finished_counts_as_unauthenticated_then_gets_408(
    gateway_factory: GatewayFactory,
) -> None:
    server = await gateway_factory(handshake_timeout=HEAD_TIMEOUT)
    registry = server.gateway.registry
    loop = asyncio.get_running_loop()
    started = loop.time()
    reader, writer = await _open_head(server)
    try:
        await wait_until(lambda: registry.pending == 1, STALLED_AFTER + 2, "a stalled head")
        assert await _status(reader, HEAD_TIMEOUT + 2) == b"HTTP/1.1 408"
        assert loop.time() - started >= HEAD_TIMEOUT - 0.5
        assert (await reader.read()).endswith(b"\r\n\r\n")  # the rest of the head, then EOF
        assert registry.pending == 0
        assert _refused(server, "timeout") == 1
    finally:
        writer.transport.abort()


async def test_stalled_heads_fill_the_unauthenticated_cap_then_new_connections_get_503(
    gateway_factory: GatewayFactory, keys: Keys
) -> None:
    server = await gateway_factory(handshake_timeout=30, max_pending_connections=2)
    registry = server.gateway.registry
    stalled = [await _open_head(server), await _open_head(server)]
    try:
        await wait_until(lambda: registry.pending == 2, STALLED_AFTER + 2, "two stalled heads")
        with pytest.raises(InvalidStatus) as refused:
            async with websockets.connect(ws_url(server), open_timeout=5):
                pass
        assert refused.value.response.status_code == 503
        assert _refused(server, "pending_full") == 1
    finally:
        for _, writer in stalled:
            writer.transport.abort()
    await wait_until(lambda: registry.pending == 0, what="the stalled heads gone")
    headers = {"Authorization": f"Bearer {keys.token()}"}
    async with websockets.connect(ws_url(server), additional_headers=headers) as ws:
        await ws.ping()


async def test_a_request_head_over_the_byte_limit_gets_431(
    gateway_factory: GatewayFactory,
) -> None:
    server = await gateway_factory()
    reader, writer = await _open_head(server)
    try:
        line = b"X-Padding: " + b"a" * 1000 + b"\r\n"
        writer.write(line * (MAX_HEAD_BYTES // len(line) + 1))
        assert await _status(reader, 5) == b"HTTP/1.1 431"
        assert _refused(server, "too_large") == 1
    finally:
        writer.transport.abort()


async def test_a_burst_of_handshakes_is_handled_a_few_per_loop_turn_and_every_one_answered(
    gateway_factory: GatewayFactory, keys: Keys
) -> None:
    """A storm's heads all become readable in one turn of the loop; handling them all there
    stalled deliveries to connected clients for as long as thousands of handshakes take."""
    server = await gateway_factory(admission_burst=200)
    turns = server.servers[0].config.http_protocol_class.turns
    assert isinstance(turns, HeadTurns)
    parts = urlsplit(server.public_url)
    assert parts.hostname is not None
    assert parts.port is not None
    head = wire.handshake_request(
        parts.hostname, parts.port, "/ws", {"Authorization": f"Bearer {keys.token()}"}
    )
    clients = [await asyncio.open_connection(parts.hostname, parts.port) for _ in range(100)]
    most_waiting = 0

    def watch() -> None:  # once per turn of the loop
        nonlocal most_waiting
        most_waiting = max(most_waiting, turns.waiting)
        watcher[0] = asyncio.get_running_loop().call_soon(watch)

    watcher = [asyncio.get_running_loop().call_soon(watch)]
    try:
        for _, writer in clients:
            writer.write(head)
        statuses = [await _status(reader, 10) for reader, _ in clients]
        assert statuses == [b"HTTP/1.1 101"] * 100
        assert most_waiting >= 100 - 2 * HEADS_PER_TURN  # paced: most waited their turn
    finally:
        watcher[0].cancel()
        for _, writer in clients:
            writer.transport.abort()
