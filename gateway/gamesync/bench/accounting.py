"""Delivery accounting: every (connection, game)'s versions against the published range.

Pure and shared by both ends of the harness: the load client feeds a :class:`Ledger` each
version as it arrives and asks :func:`shortfall` which pairs never reached the last published
version; the orchestrator copies a report's :func:`counts` into each result row and sums the
:func:`invariants` over the runs. The invariants (nothing lost, duplicated or reordered) are
what every scenario must keep, whatever its speed.
"""

from __future__ import annotations

from array import array
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

__all__ = [
    "COUNTS",
    "INVARIANTS",
    "Ledger",
    "Shortfall",
    "counts",
    "invariants",
    "shortfall",
]

# The counts a result row carries, in the order the rows have always listed them.
COUNTS = ("delivered", "expected", "skipped", "lost", "duplicates", "out_of_order")
# The counts that must be 0 in every run.
INVARIANTS = ("lost", "duplicates", "out_of_order")


class Ledger:
    """Counts received versions against ``first`` (game -> first version of the range).

    A version at or below the newest one a connection already holds for the game is a
    duplicate (equal) or out of order (older) and is not delivered; a newer one below the range
    (the latest-on-subscribe from before it) is ``before_range``; the rest are delivered, and
    the versions a delivery jumped over are ``skipped`` (conflation).
    """

    __slots__ = (
        "before_range",
        "delivered",
        "duplicates",
        "first",
        "last_rx",
        "out_of_order",
        "samples",
        "skipped",
    )

    def __init__(self) -> None:
        self.begin({})

    def begin(self, first: dict[int, int]) -> None:
        """Start a new range: every count back to zero."""
        self.first = first
        self.samples = array("d")  # latency samples in seconds, appended by the caller
        self.delivered = self.before_range = self.duplicates = 0
        self.out_of_order = self.skipped = 0
        self.last_rx = 0.0

    def record(self, seen: dict[int, int], game: int, version: int, now: float) -> bool:
        """Account ``version`` of ``game`` arriving at ``now`` on a connection whose newest
        versions are ``seen`` (updated in place); True when it is a delivery in the range."""
        last = seen.get(game, 0)
        if version <= last:
            if version == last:
                self.duplicates += 1
            else:
                self.out_of_order += 1
            return False
        seen[game] = version
        first = self.first.get(game)
        if first is None or version < first:
            self.before_range += 1
            return False
        self.delivered += 1
        self.last_rx = now
        self.skipped += version - max(last, first - 1) - 1
        return True


@dataclass(frozen=True)
class Shortfall:
    """What the watched (connection, game) pairs still miss of the range ``first..last``."""

    pairs: int  # pairs with a published range
    lost: int  # pairs that have not reached the last version
    tail: int  # versions those pairs miss after the newest they hold
    expected: int  # versions every pair should have received


def shortfall(
    watches: Iterable[tuple[Iterable[int], Mapping[int, int]]],
    first: Mapping[int, int],
    last: Mapping[int, int],
) -> Shortfall:
    """Tally ``watches`` (each connection's games and the newest version it holds of each)
    against the first and last published version of each game."""
    pairs = lost = tail = expected = 0
    for games, seen in watches:
        for game in games:
            final = last.get(game)
            start = first.get(game)
            if final is None or start is None or final < start:
                continue
            pairs += 1
            expected += final - start + 1
            newest = seen.get(game, 0)
            if newest < final:
                lost += 1
                tail += final - max(newest, start - 1)
    return Shortfall(pairs, lost, tail, expected)


def counts(*reports: Mapping[str, Any], keys: tuple[str, ...] = COUNTS) -> dict[str, int]:
    """The ``keys`` counts of one or more load-client reports, summed, in ``keys`` order."""
    return {k: sum(int(r[k]) for r in reports) for k in keys}


def invariants(rows: Iterable[Mapping[str, Any]]) -> dict[str, int]:
    """The :data:`INVARIANTS` summed over result rows (a row without one counts 0)."""
    rows = list(rows)
    return {k: sum(int(r.get(k, 0)) for r in rows) for k in INVARIANTS}
