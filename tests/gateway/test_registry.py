"""gamesync.registry: membership, admission limits, drain entry, counts by state."""

from __future__ import annotations

import asyncio

import pytest
from standins import StandInMember

from gamesync.connection import ConnectionEnd, ConnectionState
from gamesync.ratelimit import Pacer
from gamesync.registry import ADDRESS_LIMIT, PENDING_FULL, POD_FULL, USER_LIMIT, Registry


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


S = ConnectionState


def registry(max_connections: int = 10, per_user: int = 2) -> tuple[Registry, list[ConnectionEnd]]:
    ends: list[ConnectionEnd] = []
    return (
        Registry(
            max_connections=max_connections,
            max_connections_per_user=per_user,
            on_end=ends.append,
        ),
        ends,
    )


def end(member: StandInMember, registry: Registry) -> ConnectionEnd:
    """What a session does last: finish its connection and detach."""
    record = member.conn.finish(now=1.0)
    registry.detach(member, record)
    return record


async def test_attach_refuses_beyond_the_pod_limit_and_a_gone_socket_makes_room() -> None:
    reg, _ = registry(max_connections=2)
    first, second, third = StandInMember("a"), StandInMember("b"), StandInMember("c")
    assert reg.attach(first) is None
    assert reg.attach(second) is None
    assert reg.attach(third) is POD_FULL
    assert len(reg) == 3  # a refused session stays attached until it has closed
    end(third, reg)
    third.socket.release()
    end(first, reg)
    refused = StandInMember("d")
    assert reg.attach(refused) is POD_FULL  # first's socket is still closing
    end(refused, reg)
    refused.socket.release()
    first.socket.release()
    assert reg.attach(StandInMember("e")) is None


async def test_a_closing_socket_counts_toward_the_pod_until_its_transport_is_gone() -> None:
    """Issue 12.2: a session ended, its socket still held its buffer, and counted nowhere."""
    reg, _ = registry(max_connections=1)
    member = StandInMember("a")
    assert reg.attach(member) is None
    member.close(1000, "bye")
    end(member, reg)
    assert (len(reg), reg.lingering) == (0, 1)
    refused = StandInMember("b")
    assert reg.attach(refused) is POD_FULL
    end(refused, reg)
    refused.socket.release()
    member.socket.release()
    assert reg.lingering == 0
    assert reg.attach(StandInMember("c")) is None


async def test_unauthenticated_connections_are_capped_per_pod_and_per_address() -> None:
    reg = Registry(
        max_connections=100,
        max_connections_per_user=10,
        max_pending=3,
        max_pending_per_address=2,
        on_end=lambda end: None,
    )
    a1, a2, a3, b1, c1 = (StandInMember() for _ in range(5))
    assert reg.attach(a1, "10.0.0.1") is None
    assert reg.attach(a2, "10.0.0.1") is None
    assert reg.attach(a3, "10.0.0.1") is ADDRESS_LIMIT
    assert reg.attach(b1, "10.0.0.2") is None
    assert reg.attach(c1, "10.0.0.3") is PENDING_FULL
    assert (reg.pending, reg.pending_top_address) == (3, 2)
    # Authenticating frees the slot: the caps bound only those not yet authenticated.
    a1.conn.identity = StandInMember("u").conn.identity
    assert reg.admit(a1) is None
    assert (reg.pending, reg.pending_top_address) == (2, 1)
    assert reg.attach(StandInMember(), "10.0.0.1") is None
    end(b1, reg)  # so does leaving
    assert reg.pending == 2
    assert reg.attach(StandInMember(), "10.0.0.3") is None
    assert ADDRESS_LIMIT.code == PENDING_FULL.code == 1013


async def test_a_zero_per_address_cap_is_off() -> None:
    reg = Registry(
        max_connections=100,
        max_connections_per_user=10,
        max_pending=50,
        max_pending_per_address=0,
        on_end=lambda end: None,
    )
    assert all(reg.attach(StandInMember(), "10.0.0.1") is None for _ in range(50))


async def test_admissions_are_paced_and_each_one_held_back_gets_its_own_slot() -> None:
    clock = Clock()
    reg = Registry(
        max_connections=100,
        max_connections_per_user=10,
        pacer=Pacer(rate=10, burst=2, clock=clock),
        on_end=lambda end: None,
    )
    assert reg.attach(StandInMember()) is None
    assert reg.attach(StandInMember()) is None
    held = [reg.attach(StandInMember()) for _ in range(3)]
    assert all(r is not None and r.code == 1013 for r in held)
    waits = [r.retry_after_ms for r in held if r is not None]
    assert waits == sorted(waits)
    assert len(set(waits)) == 3  # not all at once
    assert waits[-1] - waits[0] >= 2 * 100 - 1  # 1/rate apart
    clock.now += 0.1  # one token's worth later: exactly one more gets in
    assert reg.attach(StandInMember()) is None
    assert reg.attach(StandInMember()) is not None


async def test_admit_opens_the_connection_and_counts_its_user() -> None:
    reg, _ = registry(per_user=2)
    members = [StandInMember("u") for _ in range(3)]
    for member in members:
        reg.attach(member)
    assert reg.admit(members[0]) is None
    assert reg.admit(members[1]) is None
    assert reg.admit(members[2]) is USER_LIMIT
    assert [m.conn.state for m in members] == [S.OPEN, S.OPEN, S.CONNECTING]
    assert USER_LIMIT.code == 4429
    end(members[2], reg)  # never admitted: frees nothing
    assert reg.admit(StandInMember("u")) is USER_LIMIT
    end(members[0], reg)
    assert reg.admit(StandInMember("u")) is None


async def test_admit_needs_an_authenticated_connection() -> None:
    reg, _ = registry()
    member = StandInMember()
    reg.attach(member)
    with pytest.raises(ValueError, match="authenticated"):
        reg.admit(member)


async def test_detach_reports_how_the_connection_ended() -> None:
    reg, ends = registry()
    member = StandInMember("u")
    reg.attach(member)
    reg.admit(member)
    member.close(4408, "idle: no subscription")
    record = end(member, reg)
    assert ends == [record]
    assert (record.closing.code, record.closing.reason, record.user_id) == (
        4408,
        "idle: no subscription",
        "u",
    )
    assert len(reg) == 0


async def test_every_session_that_detaches_is_told_to_on_leave_before_on_end() -> None:
    """The gateway's hook for the token cache: each session, authenticated or not, once."""
    told: list[object] = []
    reg = Registry(
        max_connections=10,
        max_connections_per_user=2,
        on_end=lambda record: told.append(record),
        on_leave=told.append,
    )
    admitted, pending = StandInMember("u"), StandInMember()
    for member in (admitted, pending):
        reg.attach(member)
    reg.admit(admitted)
    first, second = end(admitted, reg), end(pending, reg)
    assert told == [admitted, first, pending, second]


async def test_draining_moves_every_live_connection_to_draining_and_refuses_upgrades() -> None:
    reg, _ = registry()
    opened, connecting, closing = StandInMember("a"), StandInMember(), StandInMember("c")
    for member in (opened, connecting, closing):
        reg.attach(member)
    reg.admit(opened)
    reg.admit(closing)
    closing.close(1000, "bye")
    assert not reg.draining
    caught = reg.start_draining()
    assert reg.draining
    assert set(caught) == {opened, connecting}
    assert opened.conn.state is S.DRAINING
    assert connecting.conn.state is S.DRAINING
    assert closing.conn.state is S.CLOSING


async def test_caught_by_the_drain_while_authenticating_is_admitted_but_stays_draining() -> None:
    reg, _ = registry()
    member = StandInMember()
    reg.attach(member)
    reg.start_draining()
    member.conn.identity = StandInMember("late").conn.identity
    assert reg.admit(member) is None
    assert member.conn.state is S.DRAINING


async def test_counts_by_state_include_every_state_but_closed() -> None:
    reg, _ = registry()
    assert reg.count_by_state() == {"connecting": 0, "open": 0, "draining": 0, "closing": 0}
    members = [StandInMember(str(i)) for i in range(4)]
    for member in members:
        reg.attach(member)
    reg.admit(members[0])
    reg.admit(members[1])
    members[1].close(1000, "")
    assert reg.count_by_state() == {"connecting": 2, "open": 1, "draining": 0, "closing": 1}
    reg.start_draining()
    assert reg.count_by_state() == {"connecting": 0, "open": 0, "draining": 3, "closing": 1}


async def test_wait_empty_returns_once_the_last_session_detaches() -> None:
    reg, _ = registry()
    assert await reg.wait_empty(0.01)
    member = StandInMember("u")
    reg.attach(member)
    assert not await reg.wait_empty(0.01)
    waiter = asyncio.create_task(reg.wait_empty(5))
    await asyncio.sleep(0)  # let the waiter start waiting
    end(member, reg)
    await asyncio.sleep(0)
    assert not waiter.done()  # its socket is still closing
    member.socket.release()
    assert await waiter
