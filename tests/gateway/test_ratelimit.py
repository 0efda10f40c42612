"""gamesync.ratelimit: token bucket, keyed buckets and sliding window, on an injected clock."""

from __future__ import annotations

from gamesync.ratelimit import KeyedBuckets, TokenBucket, WindowCounter


class Clock:
    def __init__(self, now: float = 1000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def test_bucket_starts_full_and_allows_a_burst_then_refuses() -> None:
    bucket = TokenBucket(rate=2.0, burst=5, clock=Clock())
    assert [bucket.take() for _ in range(6)] == [True] * 5 + [False]


def test_bucket_refills_at_its_rate() -> None:
    clock = Clock()
    bucket = TokenBucket(rate=2.0, burst=5, clock=clock)
    while bucket.take():
        pass
    clock.now += 0.4  # 0.8 of a token
    assert not bucket.take()
    clock.now += 0.1  # 1.0 token
    assert bucket.take()
    assert not bucket.take()


def test_bucket_never_saves_more_than_its_burst() -> None:
    clock = Clock()
    bucket = TokenBucket(rate=10.0, burst=3, clock=clock)
    clock.now += 3600
    assert [bucket.take() for _ in range(4)] == [True, True, True, False]


def test_bucket_sustains_exactly_its_rate() -> None:
    clock = Clock(0.0)
    bucket = TokenBucket(rate=16.0, burst=1, clock=clock)
    granted = 0
    for _ in range(640):  # 10 s of attempts every 1/64 s (exact in binary floating point)
        clock.now += 1 / 64
        granted += bucket.take()
    assert granted == 1 + 159  # the saved-up token, then one every 4 attempts


def test_window_counts_events_inside_the_window_only() -> None:
    clock = Clock()
    window = WindowCounter(10.0, clock)
    assert [window.add() for _ in range(3)] == [1, 2, 3]
    clock.now += 9.9
    assert window.add() == 4
    clock.now += 0.1  # the first three are now exactly 10 s old: out
    assert window.add() == 2
    clock.now += 60
    assert window.add() == 1


def test_window_counts_a_burst_at_one_instant() -> None:
    window = WindowCounter(1.0, Clock())
    assert max(window.add() for _ in range(25)) == 25


def _exhaust(buckets: KeyedBuckets, key: str, burst: int) -> None:
    for _ in range(burst):
        buckets.spend(key)


def test_keyed_buckets_limit_a_key_that_spent_its_burst_until_it_refills() -> None:
    clock = Clock()
    buckets = KeyedBuckets(rate=0.5, burst=2, clock=clock)
    _exhaust(buckets, "a", 2)
    assert buckets.limited("a") == 2.0
    assert buckets.limited("b") == 0.0
    assert buckets.count_limited() == 1
    clock.now += 2.0
    assert buckets.limited("a") == 0.0


def test_a_flood_of_new_keys_forgets_the_stalest_key_never_every_limit() -> None:
    """A full map used to be emptied: as many fresh addresses as it holds freed every penalty."""
    clock = Clock()
    buckets = KeyedBuckets(rate=0.01, burst=1, clock=clock, max_keys=3)
    for key in ("old", "penalised", "recent"):
        buckets.spend(key)
        clock.now += 1.0
    buckets.spend("old")  # its newest event: now the most recent key
    buckets.spend("newcomer")  # the map is full: "penalised" (stalest event) goes
    assert buckets.limited("penalised") == 0.0
    assert [buckets.limited(k) > 0 for k in ("old", "recent", "newcomer")] == [True] * 3
    for i in range(100):  # a flood of distinct keys costs the map one entry each
        buckets.spend(f"flood-{i}")
    assert buckets.count_limited() == 3
