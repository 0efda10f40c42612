"""A pub/sub link's lifecycle: an explicit state machine whose every transition is checked."""

from __future__ import annotations

import asyncio

import pytest

from gamesync.broker.redis.link import IllegalLinkTransition, Link, LinkState

S = LinkState


def walk(*states: LinkState) -> Link:
    link = Link("127.0.0.1:6379", b"gamesync:probe:{x}")
    for state in states:
        link.transition(state)
    return link


def test_a_link_goes_live_after_subscribing_and_counts_each_time() -> None:
    link = walk()
    assert link.state is S.CONNECTING
    assert not link.is_live
    link = walk(S.SUBSCRIBING, S.LIVE)
    assert link.is_live
    assert link.times_live == 1
    link.transition(S.RETRYING)
    assert not link.is_live
    for state in (S.CONNECTING, S.SUBSCRIBING, S.LIVE):
        link.transition(state)
    assert link.times_live == 2  # a reconnect


@pytest.mark.parametrize(
    ("path", "wanted"),
    [
        ((), S.LIVE),  # never live without its subscriptions confirmed
        ((S.SUBSCRIBING,), S.CONNECTING),
        ((S.SUBSCRIBING, S.LIVE), S.SUBSCRIBING),  # a lost link waits first
        ((S.RETRYING,), S.LIVE),
        ((S.CLOSED,), S.CONNECTING),  # closed is final
    ],
)
def test_an_illegal_step_names_the_state_and_what_was_expected(
    path: tuple[LinkState, ...], wanted: LinkState
) -> None:
    link = walk(*path)
    before = link.state
    with pytest.raises(IllegalLinkTransition) as caught:
        link.transition(wanted)
    assert f"is {before.value}; cannot become {wanted.value}" in str(caught.value)
    assert "127.0.0.1:6379" in str(caught.value)
    assert "expected" in str(caught.value)
    assert link.state is before


def test_close_is_final_and_idempotent_from_any_state() -> None:
    for path in ((), (S.SUBSCRIBING,), (S.SUBSCRIBING, S.LIVE), (S.RETRYING,)):
        link = walk(*path)
        link.close()
        link.close()
        assert link.closed
        assert not link.is_live


async def test_waiters_wake_when_the_link_goes_live() -> None:
    link = walk(S.SUBSCRIBING)
    waiter = asyncio.create_task(link.wait_live())
    await asyncio.sleep(0)  # let the waiter block
    assert not waiter.done()
    link.transition(S.LIVE)
    await asyncio.wait_for(waiter, 1)
    link.transition(S.RETRYING)
    again = asyncio.create_task(link.wait_live())
    await asyncio.sleep(0)
    assert not again.done()  # no longer live: a new waiter waits
    again.cancel()
