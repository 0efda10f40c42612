"""Fixtures of the fuzz suite: one live gateway process per module, and tokens it accepts.

Every test here is marked `fuzz`; the large sizes (`slow`) only run with `-m slow`.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from pathlib import Path

import pytest

from chaos.processes import GatewayProcess
from gamesync_testing import Keys
from suite_marks import mark_folder


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    mark_folder(
        config,
        items,
        Path(__file__).parent,
        slow_reason="large size: run with -m slow",
        redis="none",
        marker=pytest.mark.fuzz,
    )


@pytest.fixture(scope="module")
def fuzz_keys(tmp_path_factory: pytest.TempPathFactory) -> Keys:
    return Keys.generate(tmp_path_factory.mktemp("fuzz-keys"))


@pytest.fixture(scope="module")
def fuzz_gateway(
    tmp_path_factory: pytest.TempPathFactory, fuzz_keys: Keys
) -> Iterator[GatewayProcess]:
    """A production-mode gateway (keys, JSON logs) whose per-client limits let a session's
    every frame reach the parser: rate and bad-message limits raised, the rest at defaults."""
    gateway = GatewayProcess.launch(
        tmp_path_factory.mktemp("fuzz-gateway"),
        "fuzz-gw",
        "--keys", str(fuzz_keys.jwks_path),
        "--broker", "memory://",
        "--authz", "open",
        "--message-rate", "1000000",
        "--message-burst", "1000000",
        "--bad-message-limit", "1000000",
        "--max-connections-per-user", "1000",
        "--unsubscribe-linger-seconds", "0",
    ).wait_ready()  # fmt: skip
    yield gateway
    gateway.stop()


@pytest.fixture(scope="module")
def fuzz_tokens(fuzz_keys: Keys) -> Iterator[str]:
    """An endless supply of valid tokens (64 users, taken in turn)."""
    pool = [fuzz_keys.token(f"fuzz{i}", ttl=3600) for i in range(64)]
    return itertools.cycle(pool)
