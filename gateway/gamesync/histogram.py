"""A latency histogram of plain integers: observed on the hot path, exported at scrape time.

prometheus_client's Histogram takes a lock on every observe; at one observation per fan-out
that was about 6 % of a gateway's CPU in the peer benchmark (docs/BENCHMARKS.md).
"""

from __future__ import annotations

from bisect import bisect_left

__all__ = ["LatencyHistogram"]


class LatencyHistogram:
    """Counts per upper bound (seconds); the last slot is +Inf."""

    __slots__ = ("bounds", "count", "counts", "sum")

    def __init__(self, bounds: tuple[float, ...]) -> None:
        self.bounds = bounds
        self.counts = [0] * (len(bounds) + 1)
        self.count = 0
        self.sum = 0.0

    def observe(self, seconds: float) -> None:
        seconds = max(0.0, seconds)
        self.counts[bisect_left(self.bounds, seconds)] += 1
        self.count += 1
        self.sum += seconds

    def cumulative(self) -> list[tuple[str, float]]:
        """Prometheus buckets: (upper bound, observations at or below it), +Inf last."""
        total = 0
        buckets = []
        for bound, count in zip((*self.bounds, float("inf")), self.counts, strict=True):
            total += count
            buckets.append(("+Inf" if bound == float("inf") else repr(bound), float(total)))
        return buckets
