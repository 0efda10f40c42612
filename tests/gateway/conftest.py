"""Fixtures for wire-level gateway tests: keys, tokens, an in-process gateway on port 0."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from wire import PUBLISH_TOKEN, GatewayFactory, Keys

from gamesync.keys import generate_key
from gamesync.server import GatewayServer
from gamesync.settings import load_settings


@pytest.fixture
def keys(tmp_path: Path) -> Keys:
    private, public = generate_key("ES256", kid="test-1")
    jwks_path = tmp_path / "jwks.json"
    jwks_path.write_text(json.dumps({"keys": [public]}))
    return Keys(jwks_path, {"keys": [private], "active": "test-1"}, private)


@pytest.fixture
async def gateway_factory(keys: Keys) -> AsyncIterator[GatewayFactory]:
    """Start in-process gateways (real uvicorn on 127.0.0.1:0); all stopped at teardown."""
    started: list[GatewayServer] = []

    async def start(**overrides: Any) -> GatewayServer:
        options: dict[str, Any] = {
            "host": "127.0.0.1",
            "port": 0,
            "internal_port": 0,
            "keys": keys.jwks_path,
            "publish_token": PUBLISH_TOKEN,
            "authz": "open",
            "unsubscribe_linger_seconds": 0.05,
            "key_reload_seconds": 0.05,
        }
        options.update(overrides)
        server = GatewayServer(load_settings(**options))
        await server.start()
        started.append(server)
        return server

    yield start
    for server in started:
        await server.stop()


@pytest.fixture
async def gateway(gateway_factory: GatewayFactory) -> GatewayServer:
    return await gateway_factory()
