"""Delivery accounting: received versions against the published range, and the run totals."""

from __future__ import annotations

import pytest

from gamesync.bench.accounting import (
    COUNTS,
    INVARIANTS,
    Ledger,
    Shortfall,
    counts,
    invariants,
    shortfall,
)


def test_each_version_is_delivered_once_and_jumps_count_as_skipped() -> None:
    ledger = Ledger()
    ledger.begin({1: 5})
    seen: dict[int, int] = {}
    verdicts = [ledger.record(seen, 1, v, now=float(v)) for v in (5, 6, 8)]
    assert verdicts == [True, True, True]
    assert (ledger.delivered, ledger.skipped) == (3, 1)  # 7 was jumped over
    assert seen == {1: 8}
    assert ledger.last_rx == 8.0


def test_a_repeat_is_a_duplicate_and_an_older_version_is_out_of_order() -> None:
    ledger = Ledger()
    ledger.begin({1: 1})
    seen: dict[int, int] = {}
    assert ledger.record(seen, 1, 3, now=1.0)
    assert not ledger.record(seen, 1, 3, now=2.0)
    assert not ledger.record(seen, 1, 2, now=3.0)
    assert (ledger.duplicates, ledger.out_of_order) == (1, 1)
    assert ledger.delivered == 1
    assert seen == {1: 3}  # neither moved the connection backwards
    assert ledger.last_rx == 1.0


def test_the_latest_from_before_the_range_counts_as_neither_delivered_nor_skipped() -> None:
    ledger = Ledger()
    ledger.begin({1: 10})
    seen: dict[int, int] = {}
    assert not ledger.record(seen, 1, 9, now=1.0)  # the latest-on-subscribe
    assert ledger.record(seen, 1, 10, now=2.0)
    assert (ledger.before_range, ledger.delivered, ledger.skipped) == (1, 1, 0)


def test_a_first_delivery_inside_the_range_skips_what_came_before_it() -> None:
    ledger = Ledger()
    ledger.begin({1: 10})
    assert ledger.record({}, 1, 13, now=1.0)
    assert ledger.skipped == 3  # 10, 11 and 12


def test_a_game_without_a_range_is_never_delivered() -> None:
    ledger = Ledger()
    ledger.begin({1: 1})
    assert not ledger.record({}, 2, 1, now=1.0)
    assert ledger.before_range == 1


def test_begin_starts_every_count_from_zero() -> None:
    ledger = Ledger()
    ledger.begin({1: 1})
    seen: dict[int, int] = {}
    ledger.record(seen, 1, 1, now=1.0)
    ledger.record(seen, 1, 1, now=1.0)
    ledger.samples.append(0.5)
    ledger.begin({1: 2})
    assert (ledger.delivered, ledger.duplicates, len(ledger.samples), ledger.last_rx) == (
        0,
        0,
        0,
        0.0,
    )


def test_shortfall_counts_pairs_short_of_the_last_version_and_what_they_miss() -> None:
    watches = [
        ([1], {1: 8}),  # complete
        ([1, 2], {1: 6, 2: 3}),  # game 1 misses 7, 8; game 2 is complete
        ([2], {}),  # never got anything of 2..3
        ([3], {}),  # game 3 published nothing in the range
    ]
    result = shortfall(watches, first={1: 5, 2: 2, 3: 4}, last={1: 8, 2: 3, 3: 3})
    assert result == Shortfall(pairs=4, lost=2, tail=2 + 2, expected=4 + 4 + 2 + 2)


def test_shortfall_of_nothing_published_is_nothing() -> None:
    assert shortfall([([1], {1: 3})], first={1: 4}, last={}) == Shortfall(0, 0, 0, 0)


def test_counts_sum_reports_in_row_order() -> None:
    one = dict.fromkeys(COUNTS, 1) | {"open": 7}
    two = dict.fromkeys(COUNTS, 2)
    assert list(counts(one)) == list(COUNTS)
    assert counts(one, two) == dict.fromkeys(COUNTS, 3)
    assert counts(one, two, keys=INVARIANTS) == {"lost": 3, "duplicates": 3, "out_of_order": 3}


def test_counts_of_a_report_missing_a_count_is_an_error() -> None:
    with pytest.raises(KeyError):
        counts({"lost": 0})


def test_invariants_sum_over_runs_and_a_missing_count_is_zero() -> None:
    rows = [{"lost": 1, "duplicates": 0, "out_of_order": 2}, {"lost": 1}]
    assert invariants(rows) == {"lost": 2, "duplicates": 0, "out_of_order": 2}
    assert invariants(iter(rows)) == {"lost": 2, "duplicates": 0, "out_of_order": 2}
