"""`BrokerStats`: the counters every broker keeps."""

from __future__ import annotations

from gamesync.broker import LAG_BUCKETS, BrokerStats


def test_lag_histogram_counts_into_the_right_bucket() -> None:
    stats = BrokerStats()
    for seconds in (0.0002, 0.003, 0.003, 7.0, -1.0):
        stats.observe_lag(seconds)
    assert stats.lag_count == 5
    assert len(stats.lag_buckets) == len(LAG_BUCKETS) + 1
    assert stats.lag_buckets[0] == 2  # 0.0002 and a clock-skewed negative
    assert stats.lag_buckets[3] == 2  # 0.003 <= 0.005
    assert stats.lag_buckets[-1] == 1
