"""Fixtures every suite may use: signing keys and in-process gateways on port 0."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from gamesync.server import GatewayServer
from gamesync_testing import GatewayFactory, Gateways, Keys


@pytest.fixture
def keys(tmp_path: Path) -> Keys:
    return Keys.generate(tmp_path)


@pytest.fixture
async def gateway_factory(keys: Keys) -> AsyncIterator[GatewayFactory]:
    """Start gateways with test defaults (overrides as settings keywords); all stopped after."""
    gateways = Gateways(keys)
    yield gateways.start
    await gateways.stop_all()


@pytest.fixture
async def gateway(gateway_factory: GatewayFactory) -> GatewayServer:
    return await gateway_factory()
