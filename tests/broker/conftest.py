"""Fixtures for the Redis fan-out tests: real redis-server processes, in-process gateways on
port 0 (real uvicorn), real websocket clients, and condition waits with deadlines."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import websockets
from pods import Keys, Player, PlayerFactory, PodFactory

from gamesync.server import GatewayServer
from gamesync_testing import GatewayFactory
from redis_servers import RedisCluster3, RedisServer, TcpProxy, redis_available
from suite_marks import mark_folder


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Skip this folder's Redis tests without redis-server, and its soak tests unless `-m slow`."""
    mark_folder(config, items, Path(__file__).parent, slow_reason="soak test: run with -m slow")


@pytest.fixture
def redis_server() -> Iterator[RedisServer]:
    server = RedisServer().start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def redis_cluster() -> Iterator[RedisCluster3]:
    if not redis_available():
        pytest.skip("redis-server is not installed")
    cluster = RedisCluster3().start()
    yield cluster
    cluster.stop()


@pytest.fixture
async def proxy_factory() -> AsyncIterator[Callable[[int], Awaitable[TcpProxy]]]:
    proxies: list[TcpProxy] = []

    async def start(target_port: int) -> TcpProxy:
        proxy = await TcpProxy(target_port).start()
        proxies.append(proxy)
        return proxy

    yield start
    for proxy in proxies:
        await proxy.stop()


@pytest.fixture
def pod_factory(gateway_factory: GatewayFactory) -> PodFactory:
    """Start gateway pods in this process (each its own broker connections); all stopped after."""

    async def start(broker: str, **overrides: Any) -> GatewayServer:
        return await gateway_factory(broker=broker, **overrides)

    return start


@pytest.fixture
async def player_factory(keys: Keys) -> AsyncIterator[PlayerFactory]:
    players: list[Player] = []

    async def connect(pod: GatewayServer, user: str = "7") -> Player:
        url = pod.public_url.replace("http://", "ws://") + f"/ws?token={keys.token(user)}"
        ws = await websockets.connect(url, max_size=None)
        player = Player(ws, pod)
        player.reader = asyncio.create_task(player.read())
        await player.wait(lambda: any(f["type"] == "welcome" for f in player.frames))
        players.append(player)
        return player

    yield connect
    for player in players:
        await player.ws.close()
        if player.reader is not None:
            await asyncio.gather(player.reader, return_exceptions=True)
