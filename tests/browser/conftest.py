"""Fixtures for the browser tests (the parts live in browser_harness.py)."""

from __future__ import annotations

import signal
from collections.abc import Iterator

import pytest
from browser_harness import OUTPUT, Browser, GatewayProcess, missing_tools


@pytest.fixture(scope="session")
def browser() -> Iterator[Browser]:
    missing = missing_tools()
    if missing is not None:
        pytest.skip(missing)
    OUTPUT.mkdir(parents=True, exist_ok=True)
    driver = Browser(OUTPUT / "driver.log")
    try:
        yield driver
    finally:
        driver.quit()


@pytest.fixture
def gateway() -> Iterator[GatewayProcess]:
    missing = missing_tools()
    if missing is not None:
        pytest.skip(missing)
    process = GatewayProcess()
    process.start()
    try:
        yield process
    finally:
        process.stop(signal.SIGTERM)
