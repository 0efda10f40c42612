"""gamesync.heartbeat.decide: every branch, on an injected clock (plain numbers)."""

from __future__ import annotations

from typing import Any

import pytest

from gamesync.connection import ConnectionState
from gamesync.heartbeat import Action, Limits, Verdict, decide
from gamesync.protocol import Close

LIMITS = Limits(ping_interval=20, ping_timeout=20, idle_timeout=60, slow_client_seconds=10)
PING = Verdict(Action.PING)
NOTHING = Verdict(Action.NONE)
SLOW = Verdict(Action.CLOSE, Close.TRY_AGAIN_LATER, "client too slow")
HEARTBEAT = Verdict(Action.CLOSE, Close.TIMEOUT, "heartbeat timeout")
IDLE = Verdict(Action.CLOSE, Close.TIMEOUT, "idle: no subscription")
EXPIRED = Verdict(Action.CLOSE, Close.UNAUTHORIZED, "token expired", "token_expired")
REVOKED = Verdict(Action.CLOSE, Close.UNAUTHORIZED, "signing key revoked", "token_expired")


def verdict(now: float, **state: Any) -> Verdict:
    options: dict[str, Any] = {
        "wall_now": 1_000_000.0,
        "state": ConnectionState.OPEN,
        "expires_at": None,
        "last_seen": 0.0,
        "ping_sent_at": None,
        "idle_since": None,
        "unwritable_since": None,
        "limits": LIMITS,
    }
    options.update(state)
    return decide(now=now, **options)


@pytest.mark.parametrize("state", [ConnectionState.CLOSING, ConnectionState.CLOSED])
def test_only_live_connections_are_pinged_or_closed(state: ConnectionState) -> None:
    overdue = {"ping_sent_at": 1.0, "idle_since": 0.0, "unwritable_since": 0.0, "expires_at": 0}
    assert verdict(1000, state=state, **overdue) == NOTHING
    assert verdict(1000, **overdue) == EXPIRED  # the same timers on an open connection


def test_a_connection_not_yet_authenticated_gets_only_the_slow_check() -> None:
    """Issue 12.2: a client that never reads was never closed before it authenticated."""
    connecting = ConnectionState.CONNECTING
    overdue = {"ping_sent_at": 1.0, "idle_since": 0.0, "expires_at": 0}
    assert verdict(1000, state=connecting, **overdue) == NOTHING
    assert verdict(9.9, state=connecting, unwritable_since=0.0) == NOTHING
    assert verdict(10, state=connecting, unwritable_since=0.0) == SLOW


def test_a_revoked_keys_session_is_closed_4401_at_its_own_point_of_the_spread() -> None:
    """Issue 12.4: sessions signed by a key a reload removed, closed over `revoke_spread`."""
    limits = Limits(
        ping_interval=20, ping_timeout=20, idle_timeout=60, slow_client_seconds=10, revoke_spread=5
    )
    early = {"revoked_at": 100.0, "spread": 0.0, "limits": limits}
    late = {"revoked_at": 100.0, "spread": 0.9, "limits": limits}
    assert verdict(99, last_seen=98.0, **early) == NOTHING
    assert verdict(100, last_seen=99.0, **early) == REVOKED
    assert verdict(104.4, last_seen=104.0, **late) == NOTHING
    assert verdict(104.5, last_seen=104.0, **late) == REVOKED
    assert REVOKED.error == "token_expired"  # the client fetches a fresh token and reconnects
    assert verdict(104.5, last_seen=104.0, limits=limits) == NOTHING  # its key is still good


def test_a_draining_connection_is_still_checked_until_its_batch_closes_it() -> None:
    assert verdict(20, state=ConnectionState.DRAINING) == PING
    assert verdict(10, state=ConnectionState.DRAINING, unwritable_since=0.0) == SLOW


def test_token_expiry_closes_4401_after_the_leeway_on_the_wall_clock() -> None:
    limits = Limits(
        ping_interval=20, ping_timeout=20, idle_timeout=60, slow_client_seconds=10, token_leeway=5
    )
    assert verdict(0, wall_now=1004.9, expires_at=1000, limits=limits) == NOTHING
    assert verdict(0, wall_now=1005, expires_at=1000, limits=limits) == EXPIRED
    assert EXPIRED.error == "token_expired"  # the error frame sent before the close


def test_token_expiry_wins_over_a_slow_socket() -> None:
    assert verdict(100, wall_now=2000, expires_at=1000, unwritable_since=0.0) == EXPIRED


def test_quiet_connection_is_pinged_after_the_interval() -> None:
    assert verdict(19.9) == NOTHING
    assert verdict(20) == PING


def test_outstanding_ping_is_not_repeated_and_times_out() -> None:
    assert verdict(30, ping_sent_at=20.0) == NOTHING
    assert verdict(39.9, ping_sent_at=20.0) == NOTHING
    assert verdict(40, ping_sent_at=20.0) == HEARTBEAT


def test_any_frame_after_the_ping_answers_it() -> None:
    assert verdict(45, last_seen=25.0, ping_sent_at=20.0) == PING  # quiet since 25 for 20 s
    assert verdict(44, last_seen=25.0, ping_sent_at=20.0) == NOTHING


def test_answered_ping_counts_as_the_last_exchange() -> None:
    # The client last spoke at 20 (answering a ping sent at 20): next ping at 40.
    assert verdict(39, last_seen=20.0, ping_sent_at=20.0) == NOTHING
    assert verdict(40, last_seen=20.0, ping_sent_at=20.0) == PING


def test_idle_connection_is_closed_after_the_idle_timeout() -> None:
    assert verdict(59, last_seen=58.0, idle_since=0.0) == NOTHING
    assert verdict(60, last_seen=59.0, idle_since=0.0) == IDLE


def test_idle_close_applies_while_a_ping_is_outstanding() -> None:
    assert verdict(60, last_seen=45.0, ping_sent_at=50.0, idle_since=0.0) == IDLE


def test_heartbeat_timeout_wins_over_idle() -> None:
    assert verdict(70, ping_sent_at=50.0, idle_since=0.0) == HEARTBEAT


def test_unwritable_socket_is_closed_as_slow_after_its_limit() -> None:
    assert verdict(9.9, last_seen=9.0, unwritable_since=0.0) == NOTHING
    assert verdict(10, last_seen=9.0, unwritable_since=0.0) == SLOW


def test_slow_client_close_wins_over_every_other_verdict() -> None:
    assert verdict(100, ping_sent_at=20.0, idle_since=0.0, unwritable_since=50.0) == SLOW


def test_unwritable_but_not_yet_slow_still_pings() -> None:
    assert verdict(20, unwritable_since=15.0) == PING


def test_silent_client_is_pinged_once_then_closed() -> None:
    """A sweeper loop on a fake clock: ping at 20, nothing back, close 4408 at 40."""
    ping_sent_at: float | None = None
    actions: list[tuple[float, Verdict]] = []
    now = 0.0
    while now < 100:
        now += 1
        result = verdict(now, last_seen=0.0, ping_sent_at=ping_sent_at)
        if result.action is not Action.NONE:
            actions.append((now, result))
        if result.action is Action.PING:
            ping_sent_at = now
        if result.action is Action.CLOSE:
            break
    assert actions == [(20, PING), (40, HEARTBEAT)]


def test_chatty_client_is_pinged_only_when_quiet() -> None:
    assert verdict(100, last_seen=99.0, ping_sent_at=60.0) == NOTHING
