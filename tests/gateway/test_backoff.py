"""`gamesync.backoff`: capped exponential backoff with full jitter."""

from __future__ import annotations

import random
import statistics

from gamesync.backoff import full_jitter


def test_the_window_doubles_per_attempt_up_to_the_cap() -> None:
    highest = [full_jitter(n, base=0.2, cap=5.0, rng=lambda: 1.0) for n in range(8)]
    assert highest == [0.2, 0.4, 0.8, 1.6, 3.2, 5.0, 5.0, 5.0]


def test_full_jitter_draws_from_zero_to_the_ceiling() -> None:
    assert full_jitter(3, base=0.5, cap=10.0, rng=lambda: 0.0) == 0.0
    assert full_jitter(3, base=0.5, cap=10.0, rng=lambda: 0.25) == 1.0
    rng = random.Random(1)
    draws = [full_jitter(4, base=0.5, cap=10.0, rng=rng.random) for _ in range(2000)]
    assert all(0.0 <= d < 8.0 for d in draws)
    # the whole window is used, not its upper half: about a quarter of draws fall below 2 s
    assert 0.2 < sum(d < 2.0 for d in draws) / len(draws) < 0.3
    assert 3.6 < statistics.mean(draws) < 4.4  # half the ceiling
    first = [full_jitter(0, base=0.2, cap=5.0, rng=rng.random) for _ in range(1000)]
    assert 0.4 < sum(d < 0.1 for d in first) / len(first) < 0.6  # below base/2 too


def test_attempts_out_of_range_stay_finite_and_capped() -> None:
    assert full_jitter(10_000, base=0.5, cap=30.0, rng=lambda: 1.0) == 30.0
    assert full_jitter(-3, base=0.5, cap=30.0, rng=lambda: 1.0) == 0.5


def test_retriers_that_failed_together_spread_out() -> None:
    rng = random.Random(7)
    delays = [full_jitter(6, base=0.2, cap=5.0, rng=rng.random) for _ in range(100)]
    assert len({round(d, 6) for d in delays}) == 100
    assert min(delays) < 0.5 < 4.5 < max(delays)
