"""A closed connection is freed by reference counting, never left to the cyclic collector.

Each connection used to end in reference cycles (the ASGI scope naming its socket, which held
the scope; the upgraded HTTP protocol and its parser's bound callbacks): ~50 objects a
connection that only the cyclic collector could free. Under churn, a reconnect storm or
hostile clients reconnecting, that garbage piled up until a full collection walked every live
connection's objects: a pause of 80 ms in the hostile-clients scenario (docs/RELIABILITY.md).
"""

from __future__ import annotations

import gc
from collections.abc import Iterator
from contextlib import contextmanager

import websockets
from feeds import SseFeed, address
from wire import Keys, connect, recv_json, recv_until, wait_until

from gamesync.server import GatewayServer

#: The server side's per-connection objects (the test's clients live in the same process).
SERVER_TYPES = {
    "GatewaySocket",
    "GuardedHTTP",
    "GatewayHTTP",
    "ServerProtocol",
    "HttpRequestParser",
    "SseStream",
    "Connection",
    "Session",
}


@contextmanager
def cyclic_garbage() -> Iterator[list[str]]:
    """The type names of what the cyclic collector finds unreachable at the end of the block."""
    gc.collect()
    found: list[str] = []
    gc.set_debug(gc.DEBUG_SAVEALL)
    try:
        yield found
        gc.collect()
        found.extend(type(o).__name__ for o in gc.garbage)
    finally:
        gc.set_debug(0)
        gc.garbage.clear()


async def _closed(gateway: GatewayServer) -> None:
    registry = gateway.gateway.registry
    await wait_until(lambda: len(registry) == 0 and registry.lingering == 0, what="all detached")


async def test_websocket_connections_leave_no_cycles(gateway: GatewayServer, keys: Keys) -> None:
    # A first connection outside the block: whatever is created once per process is made.
    async with await connect(gateway, token=keys.token()) as ws:
        await ws.send('{"type":"subscribe","gameId":1}')
        await recv_until(ws, lambda m: m["type"] == "subscribed")
    await _closed(gateway)
    with cyclic_garbage() as garbage:
        for _ in range(5):
            async with await connect(gateway, token=keys.token()) as ws:
                await ws.send('{"type":"subscribe","gameId":1}')
                await recv_until(ws, lambda m: m["type"] == "subscribed")
            async with await connect(gateway, token="not-a-token") as ws:  # refused: 4401
                await recv_json(ws)
                try:
                    await ws.recv()
                except websockets.ConnectionClosed:
                    pass
        await _closed(gateway)
    assert sorted(set(garbage) & SERVER_TYPES) == []


async def test_sse_streams_leave_no_cycles(gateway: GatewayServer, keys: Keys) -> None:
    host, port = address(gateway)
    feed = await SseFeed.open(host, port, "/sse/games/1", keys.token())
    await feed.until(lambda m: m["type"] == "subscribed")
    await feed.aclose()
    await _closed(gateway)
    with cyclic_garbage() as garbage:
        for _ in range(5):
            feed = await SseFeed.open(host, port, "/sse/games/1", keys.token())
            await feed.until(lambda m: m["type"] == "subscribed")
            await feed.aclose()
        await _closed(gateway)
    assert sorted(set(garbage) & SERVER_TYPES) == []
