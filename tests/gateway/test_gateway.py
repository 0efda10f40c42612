"""gamesync.gateway: supervised tasks, health and readiness, and a drain that always finishes."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import httpx
import pytest
from standins import StandInMember
from wire import wait_until

from gamesync.app import internal_app
from gamesync.gateway import Gateway
from gamesync.settings import load_settings
from gamesync.supervisor import Supervisor


@pytest.fixture
async def gateway() -> AsyncIterator[Gateway]:
    gw = Gateway.create(load_settings(dev=True, drain_seconds=0.1))
    gw.supervisor = Supervisor(backoff_base=0.001, backoff_cap=0.01, max_failures=3)
    yield gw
    await gw.stop()


def probe(gw: Gateway) -> httpx.AsyncClient:
    return httpx.AsyncClient(
        transport=httpx.ASGITransport(internal_app(gw, None)), base_url="http://gw"
    )


async def test_a_sweeper_that_fails_is_restarted_and_the_pod_stays_ready(
    gateway: Gateway, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Issue 12.1: one exception ended the sweeper and left the pod unready for good."""
    real_run = gateway.sweeper.run
    failures = [RuntimeError("a bug")]

    async def run() -> None:
        if failures:
            raise failures.pop()
        await real_run()

    monkeypatch.setattr(gateway.sweeper, "run", run)
    await gateway.start()
    await wait_until(lambda: gateway.supervisor.restarts["sweeper"] == 1, what="a restart")
    assert gateway.ready, gateway.not_ready_reasons()
    count = gateway.metrics.registry.get_sample_value
    assert count("gamesync_task_restarts_total", {"task": "sweeper"}) == 1
    assert count("gamesync_task_restarts_total", {"task": "keys-watcher"}) == 0
    async with probe(gateway) as client:
        assert (await client.get("/healthz")).status_code == 200


async def test_a_task_that_keeps_failing_turns_healthz_503_so_the_pod_is_restarted(
    gateway: Gateway, monkeypatch: pytest.MonkeyPatch
) -> None:
    async def run() -> None:
        raise RuntimeError("broken for good")

    monkeypatch.setattr(gateway.sweeper, "run", run)
    await gateway.start()
    await wait_until(lambda: not gateway.healthy, what="given up")
    async with probe(gateway) as client:
        health = await client.get("/healthz")
        ready = await client.get("/readyz")
    assert health.status_code == 503
    assert health.json()["reasons"] == ["background task sweeper failed repeatedly"]
    assert ready.status_code == 503
    assert "background task sweeper failed repeatedly" in ready.json()["reasons"]
    assert gateway.metrics.registry.get_sample_value("gamesync_healthy") == 0


class FailingMember(StandInMember):
    """A session whose `reconnect` hint raises, as a bug in one session would."""

    def send(self, payload: bytes) -> None:
        raise RuntimeError("a bug in one session")


async def test_one_sessions_failure_does_not_stop_the_drain(gateway: Gateway) -> None:
    members = [StandInMember(str(i)) for i in range(5)]
    broken = FailingMember("broken")
    for member in (*members, broken):
        gateway.registry.attach(member)
        gateway.registry.admit(member)
    await asyncio.wait_for(gateway.drain(), 5)
    assert all(m.socket.closes == [(1012, "draining", None)] for m in members)
    assert broken.socket.gone  # dropped, not left open
