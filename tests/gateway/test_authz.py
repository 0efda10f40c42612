"""gamesync.authz: the `members` and `claim` policies on an injected envelope source and clock."""

from __future__ import annotations

from gamesync.authz import Access, Authorizer
from gamesync.envelope import Envelope
from gamesync.keys import Identity
from gamesync.settings import AuthzPolicy


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def user(user_id: str, games: frozenset[int] | None = None) -> Identity:
    return Identity(user_id=user_id, expires_at=2**40, games=games, kid=None)


class Latest:
    """The newest envelope per game, counting every read (a Redis GET for games not here)."""

    def __init__(self) -> None:
        self.envelopes: dict[int, Envelope] = {}
        self.reads = 0

    async def __call__(self, game_id: int) -> Envelope | None:
        self.reads += 1
        return self.envelopes.get(game_id)


async def test_members_refusals_are_cached_briefly_so_probing_ids_costs_no_reads() -> None:
    """Issue 12.5: every denied subscribe read the game's latest envelope again."""
    latest, clock = Latest(), Clock()
    latest.envelopes[5] = Envelope(
        game_id=5, version=1, snapshot_json=b"{}", members=frozenset({"8"})
    )
    authz = Authorizer(AuthzPolicy.MEMBERS, latest=latest, cache_seconds=5, clock=clock)
    for _ in range(3):
        assert await authz.decide(user("7"), "t", 5) is Access.DENY
        assert await authz.decide(user("7"), "t", 404) is Access.DENY
    assert latest.reads == 2
    clock.now += 5.1  # the refusal is only briefly kept
    assert await authz.decide(user("7"), "t", 5) is Access.DENY
    assert latest.reads == 3


async def test_members_allowances_are_never_cached_and_a_change_clears_refusals() -> None:
    latest, clock = Latest(), Clock()
    latest.envelopes[5] = Envelope(
        game_id=5, version=1, snapshot_json=b"{}", members=frozenset({"8"})
    )
    authz = Authorizer(AuthzPolicy.MEMBERS, latest=latest, cache_seconds=5, clock=clock)
    assert await authz.decide(user("8"), "t", 5) is Access.ALLOW
    assert await authz.decide(user("7"), "t", 5) is Access.DENY
    latest.envelopes[5] = Envelope(
        game_id=5, version=2, snapshot_json=b"{}", members=frozenset({"7", "8"})
    )
    authz.members_changed(5)  # the hub saw the new members
    assert await authz.decide(user("7"), "t", 5) is Access.ALLOW
    latest.envelopes[5] = Envelope(
        game_id=5, version=3, snapshot_json=b"{}", members=frozenset({"7"})
    )
    assert await authz.decide(user("8"), "t", 5) is Access.DENY  # allowances are not cached


async def test_claim_policy_reads_only_the_token() -> None:
    latest = Latest()
    authz = Authorizer(AuthzPolicy.CLAIM, latest=latest)
    assert await authz.decide(user("7", frozenset({1})), "t", 1) is Access.ALLOW
    assert await authz.decide(user("7", frozenset({1})), "t", 2) is Access.DENY
    assert await authz.decide(user("7"), "t", 1) is Access.DENY  # no games claim: no game
    assert latest.reads == 0
