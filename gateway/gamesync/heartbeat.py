"""Heartbeats, idle, token-expiry, key-revocation and slow-client checks: one pure decision."""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum
from typing import TypedDict

from gamesync.connection import LIVE, ConnectionState
from gamesync.protocol import Close

__all__ = ["Action", "Limits", "Timers", "Verdict", "decide", "next_check"]


class Action(Enum):
    NONE = "none"
    PING = "ping"
    CLOSE = "close"


@dataclass(frozen=True, slots=True)
class Limits:
    ping_interval: float
    ping_timeout: float
    idle_timeout: float
    slow_client_seconds: float
    #: seconds a token stays good after its `exp` (the verifier's leeway)
    token_leeway: float = 0.0
    #: sessions of a revoked signing key are closed spread over this many seconds
    revoke_spread: float = 5.0


@dataclass(frozen=True, slots=True)
class Verdict:
    action: Action
    code: int = 0
    reason: str = ""
    #: the `error` frame's code sent before the close, if any
    error: str | None = None


class Timers(TypedDict):
    """What `decide` and `next_check` read of one connection, besides the clocks and limits."""

    state: ConnectionState
    expires_at: float | None
    last_seen: float
    ping_sent_at: float | None
    idle_since: float | None
    unwritable_since: float | None
    revoked_at: float | None
    spread: float


NOTHING = Verdict(Action.NONE)
PING = Verdict(Action.PING)
TOKEN_EXPIRED = Verdict(Action.CLOSE, Close.UNAUTHORIZED, "token expired", "token_expired")
#: the session's token was signed by a key no longer in the key set: the client fetches a new one
KEY_REVOKED = Verdict(Action.CLOSE, Close.UNAUTHORIZED, "signing key revoked", "token_expired")
TOO_SLOW = Verdict(Action.CLOSE, Close.TRY_AGAIN_LATER, "client too slow")


def decide(
    *,
    now: float,
    wall_now: float,
    state: ConnectionState,
    expires_at: float | None,
    last_seen: float,
    ping_sent_at: float | None,
    idle_since: float | None,
    unwritable_since: float | None,
    limits: Limits,
    revoked_at: float | None = None,
    spread: float = 0.0,
) -> Verdict:
    """What the sweeper does with one connection now.

    `expires_at` (the token's `exp`) and `wall_now` are Unix times; every other time is on the
    loop's clock. Live (OPEN or DRAINING) connections get every check; one still CONNECTING
    (not yet authenticated) only the slow-client check, so that a client that never reads
    cannot hold its buffer before it has authenticated either. `revoked_at` is when the key
    that signed the token left the key set; the close then comes `spread` (a fraction in
    [0, 1), fixed per connection) of `limits.revoke_spread` later, so that the sessions of one
    key do not all reconnect at once.
    """
    if state not in LIVE:
        if state is ConnectionState.CONNECTING and _too_slow(now, unwritable_since, limits):
            return TOO_SLOW
        return NOTHING
    if expires_at is not None and expires_at + limits.token_leeway <= wall_now:
        return TOKEN_EXPIRED
    if revoked_at is not None and now >= revoked_at + spread * limits.revoke_spread:
        return KEY_REVOKED
    if _too_slow(now, unwritable_since, limits):
        return TOO_SLOW
    outstanding = ping_sent_at is not None and last_seen < ping_sent_at
    if outstanding:
        assert ping_sent_at is not None
        if now - ping_sent_at >= limits.ping_timeout:
            return Verdict(Action.CLOSE, Close.TIMEOUT, "heartbeat timeout")
    if idle_since is not None and now - idle_since >= limits.idle_timeout:
        return Verdict(Action.CLOSE, Close.TIMEOUT, "idle: no subscription")
    if not outstanding:
        quiet_since = last_seen if ping_sent_at is None else max(last_seen, ping_sent_at)
        if now - quiet_since >= limits.ping_interval:
            return PING
    return NOTHING


def _too_slow(now: float, unwritable_since: float | None, limits: Limits) -> bool:
    return unwritable_since is not None and now - unwritable_since >= limits.slow_client_seconds


def next_check(
    *,
    now: float,
    wall_now: float,
    state: ConnectionState,
    expires_at: float | None,
    last_seen: float,
    ping_sent_at: float | None,
    idle_since: float | None,
    unwritable_since: float | None,
    limits: Limits,
    revoked_at: float | None = None,
    spread: float = 0.0,
) -> float:
    """The loop time before which `decide` on these fields gives NOTHING (inf: never).

    The earliest of the deadlines `decide` checks. Time passing is the only thing it assumes:
    a field that moves later (a client heard from, a renewed token) only makes it early, and
    the caller bounds how long a change that makes a deadline earlier may go unseen.
    """
    due = float("inf")
    if unwritable_since is not None:
        due = unwritable_since + limits.slow_client_seconds
    if state not in LIVE:
        return due if state is ConnectionState.CONNECTING else float("inf")
    if expires_at is not None:
        due = min(due, now + (expires_at + limits.token_leeway - wall_now))
    if revoked_at is not None:
        due = min(due, revoked_at + spread * limits.revoke_spread)
    if idle_since is not None:
        due = min(due, idle_since + limits.idle_timeout)
    if ping_sent_at is not None and last_seen < ping_sent_at:
        return min(due, ping_sent_at + limits.ping_timeout)
    quiet_since = last_seen if ping_sent_at is None else max(last_seen, ping_sent_at)
    return min(due, quiet_since + limits.ping_interval)
