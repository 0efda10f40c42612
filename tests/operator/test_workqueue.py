"""The work queue's rules: one pass per key at a time, deduplicated, earliest due time wins."""

from __future__ import annotations

import asyncio

import pytest

from gamesync_operator.workqueue import QueueClosed, WorkQueue


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_a_key_asked_for_many_times_before_its_pass_gets_one_pass() -> None:
    clock = Clock()
    queue: WorkQueue[str] = WorkQueue(clock)
    for _ in range(5):
        queue.add("a")
    assert queue.pop_due() == "a"
    assert queue.pop_due() is None


def test_the_earliest_due_time_wins_and_nothing_is_handed_out_early() -> None:
    clock = Clock()
    queue: WorkQueue[str] = WorkQueue(clock)
    queue.add("a", delay=30)
    queue.add("a", delay=1)  # a child changed: sooner than the resync
    queue.add("a", delay=60)  # a later ask does not postpone it
    assert queue.pop_due() is None
    assert queue.wait_time() == 1
    clock.now += 1
    assert queue.pop_due() == "a"


def test_a_key_asked_for_during_its_pass_gets_exactly_one_more_after_it() -> None:
    clock = Clock()
    queue: WorkQueue[str] = WorkQueue(clock)
    queue.add("a")
    queue.add("b")
    first = queue.pop_due()
    queue.add(first or "")
    queue.add(first or "")
    second = queue.pop_due()
    assert {first, second} == {"a", "b"}
    assert queue.pop_due() is None  # `first` is still active: never two passes at once
    assert queue.wait_time() is None  # nothing waits but the active key
    queue.done(first or "")
    assert queue.pop_due() == first
    assert queue.pop_due() is None


def test_a_forgotten_key_is_not_handed_out() -> None:
    queue: WorkQueue[str] = WorkQueue(Clock())
    queue.add("gone")
    queue.forget("gone")
    assert queue.pop_due() is None
    assert len(queue) == 0


async def test_get_wakes_when_a_key_is_added_and_close_releases_the_waiters() -> None:
    queue: WorkQueue[str] = WorkQueue()
    waiter = asyncio.create_task(queue.get())
    await asyncio.sleep(0)  # let it wait
    assert not waiter.done()
    queue.add("a")
    assert await asyncio.wait_for(waiter, 1) == "a"
    assert queue.active == frozenset({"a"})
    idle = asyncio.create_task(queue.get())
    await asyncio.sleep(0)
    queue.close()
    with pytest.raises(QueueClosed):
        await asyncio.wait_for(idle, 1)
    queue.add("b")  # ignored once closed
    assert len(queue) == 0


async def test_get_waits_for_a_delayed_key() -> None:
    queue: WorkQueue[str] = WorkQueue()
    queue.add("a", delay=0.05)
    loop = asyncio.get_running_loop()
    started = loop.time()
    assert await asyncio.wait_for(queue.get(), 1) == "a"
    assert loop.time() - started >= 0.04
