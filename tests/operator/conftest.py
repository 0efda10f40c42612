"""Operator test fixtures: KMock with server-side apply, and the suite-wide API call record."""

from __future__ import annotations

from typing import Any

import pytest
from api_calls import SUITE
from apply_emulator import ApplyEmulator

#: Runs after every other operator test: it compares what they all did with the chart's RBAC.
LAST = "test_rbac.py::test_the_chart_grants_exactly_what_the_kmock_suite_used"


@pytest.fixture
def kmock_options(kmock_options: dict[str, Any]) -> dict[str, Any]:
    """Every KMock server in these tests models server-side apply (see apply_emulator)."""
    return {**kmock_options, "cls": ApplyEmulator}


@pytest.fixture(autouse=True)
def _record_kmock_tests(request: pytest.FixtureRequest) -> None:
    if "kmock" in request.fixturenames:
        SUITE.ran.add(request.node.nodeid)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    last = [i for i in items if i.nodeid.endswith(LAST)]
    items[:] = [i for i in items if i not in last] + last
