"""Fixtures of the chaos suite: a real redis-server, real gateway processes, signed tokens.

Every scenario here is marked `chaos`; one that needs redis-server is skipped without it, and
the large sizes (`slow`) only run with `-m slow`.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from chaos.processes import GatewayLauncher, GatewayProcess
from gamesync_testing import PUBLISH_TOKEN, Keys
from redis_servers import RedisServer
from suite_marks import mark_folder


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    mark_folder(
        config,
        items,
        Path(__file__).parent,
        slow_reason="large size: run with -m slow",
        marker=pytest.mark.chaos,
    )


@pytest.fixture
def redis_server() -> Iterator[RedisServer]:
    server = RedisServer().start()
    yield server
    server.stop()


@pytest.fixture
def launch_gateways(tmp_path: Path, keys: Keys) -> Iterator[GatewayLauncher]:
    """Start `count` gateway processes with the test keys and ARGS; all killed after."""
    started: list[GatewayProcess] = []

    def launch(count: int, *args: str, prefix: str = "gw") -> list[GatewayProcess]:
        base = len(started)
        common = ("--keys", str(keys.jwks_path), "--publish-token", PUBLISH_TOKEN)
        new = [
            GatewayProcess.launch(tmp_path, f"{prefix}-{base + i}", *common, *args)
            for i in range(count)
        ]
        started.extend(new)
        return [g.wait_ready() for g in new]

    yield launch
    for gateway in started:
        gateway.stop()


@pytest.fixture
def tokens(keys: Keys) -> Callable[[int], str]:
    """Client `i`'s token: user `u{i}`, one hour (each client its own user, under every cap)."""
    return lambda i: keys.token(f"u{i}", ttl=3600)


@pytest.fixture
def signer_path(tmp_path: Path, keys: Keys) -> Path:
    """The test keys' signer file, for client processes that sign their own tokens."""
    path = tmp_path / "signer.json"
    path.write_text(json.dumps(keys.signer))
    return path
