"""Fixtures for the chart tests."""

from __future__ import annotations

import pytest
from chart_rendering import SCENARIOS


@pytest.fixture(params=sorted(SCENARIOS), scope="session")
def scenario(request: pytest.FixtureRequest) -> str:
    name: str = request.param
    return name
