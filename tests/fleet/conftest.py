"""Fixtures for the fleet tests: real Redis, gateway processes, the Service stand-in, clients."""

from __future__ import annotations

import asyncio
import random
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from fleet import Pod, Service
from gamesync_testing import Keys
from redis_servers import RedisServer
from suite_marks import mark_folder


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Skip without redis-server; the full-size runs only with `-m slow`."""
    mark_folder(
        config, items, Path(__file__).parent, slow_reason="full size: run with -m slow", redis="all"
    )


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
