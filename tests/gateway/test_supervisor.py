"""gamesync.supervisor: failed tasks restarted with backoff or given up on; errors logged once."""

from __future__ import annotations

import asyncio
import logging

import pytest
from wire import wait_until

from gamesync.supervisor import ErrorLog, Supervisor


def quick(**options: float) -> Supervisor:
    return Supervisor(backoff_base=0.001, backoff_cap=0.01, **options)  # type: ignore[arg-type]


async def test_a_task_that_raises_is_restarted_and_keeps_working() -> None:
    supervisor = quick()
    runs: list[int] = []
    done = asyncio.Event()

    async def flaky() -> None:
        runs.append(len(runs))
        if len(runs) < 3:
            raise RuntimeError("a bug in one item")
        done.set()
        await asyncio.Event().wait()

    supervisor.spawn("sweeper", flaky)
    await asyncio.wait_for(done.wait(), 5)
    assert supervisor.restarts["sweeper"] == 2
    assert supervisor.failed == []
    assert not supervisor.tasks[0].done()
    await supervisor.stop()
    assert supervisor.tasks == []


async def test_a_task_that_keeps_failing_is_given_up_on_and_reported(
    caplog: pytest.LogCaptureFixture,
) -> None:
    supervisor = quick(max_failures=3, window=60)

    async def broken() -> None:
        raise RuntimeError("always")

    with caplog.at_level(logging.ERROR, "gamesync.supervisor"):
        supervisor.spawn("keys-watcher", broken)
        await wait_until(lambda: supervisor.failed == ["keys-watcher"], what="give up")
    assert supervisor.restarts["keys-watcher"] == 2
    assert any("giving up" in r.getMessage() for r in caplog.records)
    await supervisor.stop()


async def test_a_task_that_finishes_is_not_restarted() -> None:
    supervisor = quick()
    runs = []

    async def once() -> None:
        runs.append(1)

    task = supervisor.spawn("once", once)
    await task
    assert runs == [1]
    assert supervisor.restarts["once"] == 0


async def test_cancellation_is_not_a_failure() -> None:
    supervisor = quick()
    supervisor.spawn("forever", lambda: asyncio.Event().wait())  # type: ignore[arg-type,return-value]
    await asyncio.sleep(0)
    await supervisor.stop()
    assert supervisor.failed == []
    assert supervisor.restarts["forever"] == 0


def test_an_error_kind_is_logged_once_per_interval_with_a_count(
    caplog: pytest.LogCaptureFixture,
) -> None:
    now = [0.0]
    errors = ErrorLog(logging.getLogger("test.errors"), interval=60, clock=lambda: now[0])
    with caplog.at_level(logging.ERROR, "test.errors"):
        assert errors.error("visit", "sweeping a session failed", ValueError("x"))
        for _ in range(99):
            assert not errors.error("visit", "sweeping a session failed", ValueError("x"))
        assert errors.error("drain", "draining failed", ValueError("y"))  # another kind
        now[0] = 61
        assert errors.error("visit", "sweeping a session failed", ValueError("x"))
    messages = [r.getMessage() for r in caplog.records]
    assert messages == [
        "sweeping a session failed",
        "draining failed",
        "sweeping a session failed (99 more like it since the last report)",
    ]
    assert all(r.exc_info is not None for r in caplog.records)
