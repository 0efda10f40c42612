"""Fixtures for the fleet tests: real Redis, gateway processes, the Service stand-in, clients."""

from __future__ import annotations

import asyncio
import random
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from fleet import Pod, Service
from gamesync_testing import Keys
from redis_servers import RedisServer, redis_available


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Skip without redis-server; the full-size runs only with `-m slow`."""
    here = Path(__file__).parent
    wants_slow = "slow" in (config.option.markexpr or "")
    for item in items:
        if here not in item.path.parents:
            continue
        if not redis_available():
            item.add_marker(pytest.mark.skip(reason="redis-server is not installed"))
        if "slow" in item.keywords and not wants_slow:
            item.add_marker(pytest.mark.skip(reason="full size: run with -m slow"))


@pytest.fixture
def redis_server() -> Iterator[RedisServer]:
    server = RedisServer().start()
    yield server
    server.stop()


@pytest.fixture
def fleet_keys(tmp_path: Path) -> Keys:
    return Keys.generate(tmp_path)


@pytest.fixture
async def pods() -> AsyncIterator[list[Pod]]:
    started: list[Pod] = []
    yield started
    await asyncio.gather(*(p.stop() for p in started))


@pytest.fixture
async def service() -> AsyncIterator[Service]:
    routing = Service(random.Random(18))
    routing.start()
    yield routing
    await routing.stop()
