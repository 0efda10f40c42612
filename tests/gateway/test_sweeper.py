"""gamesync.sweeper: the verdicts of heartbeat.decide applied to the registry's sessions."""

from __future__ import annotations

import logging
from collections.abc import Callable

import pytest
from standins import StandInMember

from gamesync.connection import ConnectionState, DeliveryStats
from gamesync.heartbeat import Limits
from gamesync.keys import Identity
from gamesync.metrics import GatewayMetrics, GatewaySample
from gamesync.registry import Registry
from gamesync.sweeper import Sweeper

LIMITS = Limits(
    ping_interval=20, ping_timeout=20, idle_timeout=60, slow_client_seconds=10, token_leeway=5
)

IDLE_POD = GatewaySample(
    connections_by_state={},
    subscriptions=0,
    games=0,
    deliveries=0,
    bytes_out=0,
    conflated=0,
    stale=0,
    fanouts=0,
    slow_closes=0,
    kids=[],
    key_reloads=0,
    key_reload_failures=0,
    runtime_reloads=0,
    runtime_failures=0,
    broker_ready=True,
    draining=False,
    ready=True,
)


def world(*members: StandInMember) -> tuple[Sweeper, DeliveryStats, GatewayMetrics]:
    registry = Registry(max_connections=100, max_connections_per_user=10, on_end=lambda end: None)
    for member in members:
        registry.attach(member)
        if member.conn.identity is not None:
            registry.admit(member)
    stats = DeliveryStats()
    metrics = GatewayMetrics(lambda: IDLE_POD)
    return Sweeper(registry, LIMITS, stats, metrics), stats, metrics


def test_tick_is_a_quarter_of_the_shortest_timer_at_most_a_second() -> None:
    sweeper, _, _ = world()
    assert sweeper.tick == 1.0
    sweeper.limits = Limits(ping_interval=2, ping_timeout=3, idle_timeout=60, slow_client_seconds=1)
    assert sweeper.tick == 0.5


def test_a_quiet_session_is_pinged_then_closed_4408_when_silent() -> None:
    member = StandInMember("u")
    member.conn.idle_since = None
    sweeper, _, _ = world(member)
    sweeper.sweep(now=20, wall_now=0)
    assert (member.socket.pings, member.conn.ping_sent_at) == (1, 20)
    sweeper.sweep(now=39, wall_now=0)
    assert member.socket.closes == []
    sweeper.sweep(now=40, wall_now=0)
    assert member.socket.closes == [(4408, "heartbeat timeout", None)]
    assert member.conn.state is ConnectionState.CLOSING


def test_an_expired_token_is_closed_4401_with_token_expired_first() -> None:
    member = StandInMember("u", expires_at=1000)
    sweeper, _, metrics = world(member)
    sweeper.sweep(now=1, wall_now=1004)
    assert member.socket.closes == []
    sweeper.sweep(now=2, wall_now=1005)  # the two clocks move together
    assert member.socket.closes == [(4401, "token expired", None)]
    assert member.socket.messages() == [{"type": "error", "code": "token_expired"}]
    reason = {"reason": "token expired on a live connection"}
    assert metrics.registry.get_sample_value("gamesync_auth_failures_total", reason) == 1


def test_a_slow_client_is_closed_1013_counted_and_its_transport_aborted_soon() -> None:
    member = StandInMember("u")
    member.socket.unwritable_since = 5.0
    sweeper, stats, _ = world(member)
    sweeper.sweep(now=15, wall_now=0)
    assert member.socket.closes == [(1013, "client too slow", 1.0)]
    assert stats.slow_closes == 1


def test_sessions_not_yet_admitted_or_already_closing_are_left_alone() -> None:
    connecting, closing = StandInMember(), StandInMember("c")
    sweeper, _, _ = world(connecting, closing)
    closing.close(1000, "bye")
    sweeper.sweep(now=1000, wall_now=2**41)
    assert connecting.socket.closes == []
    assert connecting.socket.pings == closing.socket.pings == 0
    assert closing.socket.closes == [(1000, "bye", None)]


def test_draining_sessions_are_still_swept_until_their_batch() -> None:
    member = StandInMember("u")
    member.conn.idle_since = None
    sweeper, _, _ = world(member)
    sweeper.registry.start_draining()
    sweeper.sweep(now=20, wall_now=0)
    assert member.socket.pings == 1


def test_a_session_not_yet_authenticated_that_cannot_drain_is_closed_1013() -> None:
    """Issue 12.2: the slow-client check skipped unauthenticated connections."""
    member = StandInMember()
    member.socket.unwritable_since = 5.0
    sweeper, stats, _ = world(member)
    sweeper.sweep(now=14.9, wall_now=0)
    assert member.socket.closes == []
    sweeper.sweep(now=15, wall_now=0)
    assert member.socket.closes == [(1013, "client too slow", 1.0)]
    assert stats.slow_closes == 1


class BrokenSocketMember(StandInMember):
    """A session whose close raises, as `send_close` raised InvalidState (issue 12.1)."""

    def close(
        self,
        code: int,
        reason: str,
        *,
        error: str | None = None,
        abort_after: float | None = None,
    ) -> None:
        raise RuntimeError("InvalidState: connection is closing")


def test_one_sessions_failure_neither_stops_the_pass_nor_leaves_it_behind(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Issue 12.1: one session's exception ended the sweeper: no more pings or closes, ever."""
    broken = [BrokenSocketMember("b1"), BrokenSocketMember("b2")]
    healthy = StandInMember("h")
    for member in (*broken, healthy):
        member.conn.idle_since = None
    for member in broken:
        member.socket.unwritable_since = 0.0  # too slow: the sweeper closes them
    sweeper, _, _ = world(*broken, healthy)
    with caplog.at_level(logging.ERROR, "gamesync.sweeper"):
        sweeper.sweep(now=100, wall_now=0, members=[*broken, healthy])
    assert healthy.socket.pings == 1  # visited after the failures
    assert all(m.socket.gone for m in broken)  # the broken ones' sockets were dropped
    logged = [r for r in caplog.records if "sweeping a session failed" in r.getMessage()]
    assert len(logged) == 1  # once, not once per session


def _timeline(
    member: StandInMember,
    changes: dict[float, Callable[[StandInMember], None]],
    limits: Limits,
    judge_all: bool,
) -> list[tuple[float, str]]:
    """What the sweeper did to `member` over 200 s of ticks, with `changes` made at their
    times; `judge_all` judges every session every tick (the sweeper before it skipped any)."""
    sweeper, _, _ = world(member)
    sweeper.limits = limits
    seen: list[tuple[float, str]] = []
    pings = 0
    for step in range(200 * 4):
        now = step * 0.25
        if now in changes:
            changes[now](member)
        if judge_all:
            member.conn.sweep_due = 0.0
        sweeper.sweep(now=now, wall_now=1_000_000 + now)
        if member.socket.pings > pings:
            pings = member.socket.pings
            seen.append((now, "ping"))
            if now < 60:  # the client answers its pings for a minute, then goes silent
                member.socket.last_seen = now
        if member.socket.closes:
            seen.append((now, f"close {member.socket.closes[0][0]}"))
            break
    return seen


@pytest.mark.parametrize(
    "case",
    [
        "quiet then silent",
        "idle",
        "token expires",
        "slow from t=31",
        "slow from t=31, a 2 s limit",
        "renewed to expire sooner",
    ],
)
def test_skipping_sessions_with_nothing_due_changes_no_verdict_and_no_time(case: str) -> None:
    def setup() -> tuple[StandInMember, dict[float, Callable[[StandInMember], None]]]:
        member = StandInMember("u", expires_at=1_000_000 + 10_000)
        member.conn.idle_since = None
        changes: dict[float, Callable[[StandInMember], None]] = {}
        if case == "idle":
            changes[12.5] = lambda m: setattr(m.conn, "idle_since", 12.5)
        elif case == "token expires":
            expiring = Identity(user_id="u", expires_at=1_000_000 + 47, games=None, kid=None)
            member.conn.identity = expiring
        elif case.startswith("slow from t=31"):
            changes[31.0] = lambda m: setattr(m.socket, "unwritable_since", 31.0)
        elif case == "renewed to expire sooner":
            identity = Identity(user_id="u", expires_at=1_000_000 + 31, games=None, kid=None)

            def renew(m: StandInMember) -> None:
                m.conn.identity = identity
                m.conn.sweep_due = 0.0  # what Session does on a renewal

            changes[29.0] = renew
        return member, changes

    limits = LIMITS
    if case.endswith("a 2 s limit"):  # shorter than the horizon: seen by the unwritable check
        limits = Limits(ping_interval=20, ping_timeout=20, idle_timeout=60, slow_client_seconds=2)
    skipping = _timeline(*setup(), limits, judge_all=False)
    every_tick = _timeline(*setup(), limits, judge_all=True)
    assert skipping == every_tick
    assert skipping  # every case ends in a close
    assert skipping[-1][1].startswith("close")


def test_a_session_heard_from_is_not_judged_again_before_its_next_deadline() -> None:
    member = StandInMember("u")
    member.conn.idle_since = None
    sweeper, _, _ = world(member)
    sweeper.sweep(now=1, wall_now=0)
    # quiet since 0: the ping is due at 20, but nothing is skipped longer than the horizon
    assert sweeper.horizon == 5.0
    assert member.conn.sweep_due == 6.0
    member.socket.last_seen = 17.0
    sweeper.sweep(now=6, wall_now=0)
    sweeper.sweep(now=11, wall_now=0)
    sweeper.sweep(now=16, wall_now=0)
    assert member.conn.sweep_due == 21.0
    sweeper.sweep(now=21, wall_now=0)
    assert member.conn.sweep_due == 26.0
    sweeper.sweep(now=37, wall_now=0)  # heard from at 17: the ping is due at 37
    assert member.socket.pings == 1
    assert member.conn.sweep_due == 42.0


def test_a_revoked_key_makes_every_session_look_again_at_once() -> None:
    member = StandInMember("u", expires_at=2**40)
    assert member.conn.identity is not None
    member.conn.identity = Identity(user_id="u", expires_at=2**40, games=None, kid="k1")
    member.conn.idle_since = None
    sweeper, _, _ = world(member)
    sweeper.limits = Limits(
        ping_interval=20, ping_timeout=20, idle_timeout=60, slow_client_seconds=10, revoke_spread=0
    )
    sweeper.sweep(now=1, wall_now=0)
    assert member.conn.sweep_due > 2
    sweeper.revoke({"k1"}, now=2)
    sweeper.sweep(now=2, wall_now=0)
    assert member.socket.closes == [(4401, "signing key revoked", None)]
