"""Small rate limiters: client messages, admissions, failed credentials. Pure but for the clock."""

from __future__ import annotations

from collections import deque
from collections.abc import Callable

__all__ = ["KeyedBuckets", "Pacer", "TokenBucket", "WindowCounter"]


class TokenBucket:
    """`rate` tokens per second, at most `burst` saved up."""

    __slots__ = ("_burst", "_clock", "_rate", "_stamp", "_tokens")

    def __init__(self, rate: float, burst: int, clock: Callable[[], float]) -> None:
        self._rate = rate
        self._burst = float(burst)
        self._tokens = float(burst)
        self._clock = clock
        self._stamp = clock()

    def take(self) -> bool:
        """Spend one token if there is one."""
        now = self._clock()
        self._tokens = min(self._burst, self._tokens + (now - self._stamp) * self._rate)
        self._stamp = now
        if self._tokens >= 1.0:
            self._tokens -= 1.0
            return True
        return False

    def wait(self) -> float:
        """Seconds until the next token (0 if one is there); spends nothing."""
        now = self._clock()
        tokens = min(self._burst, self._tokens + (now - self._stamp) * self._rate)
        return 0.0 if tokens >= 1.0 else (1.0 - tokens) / self._rate


class Pacer:
    """Admits `rate` a second, `burst` at once; gives each one held back its own later slot.

    A token bucket refuses a crowd all at once, and a crowd told "retry in 1 s" comes back all
    at once. Instead every refusal gets the next free slot (`1/rate` apart, after the tokens the
    bucket will refill): a crowd of N is told to come back spread over `(N - burst) / rate`
    seconds, and each returning client finds the token the bucket refilled for its slot.
    """

    __slots__ = ("_bucket", "_clock", "_interval", "_max_wait", "_next_slot")

    def __init__(
        self, rate: float, burst: int, clock: Callable[[], float], *, max_wait: float = 60.0
    ) -> None:
        self._bucket = TokenBucket(rate, burst, clock)
        self._interval = 1.0 / rate
        self._clock = clock
        self._max_wait = max_wait
        self._next_slot = 0.0

    def admit(self) -> float | None:
        """None to admit now, else the seconds (at most `max_wait`) to wait before trying again."""
        if self._bucket.take():
            return None
        now = self._clock()
        slot = max(self._next_slot, now + self._bucket.wait())
        self._next_slot = slot + self._interval
        # A tenth of a slot late, so that the token is there (not 0.999 of it) on arrival.
        return min(self._max_wait, slot - now + self._interval / 10)


class KeyedBuckets:
    """A token bucket per key (a source address), for rare events such as failed credentials.

    At most `max_keys` are kept, in the order of their latest event: a new key beyond that
    forgets the key whose latest event is the oldest (most likely refilled by now). A flood of
    distinct keys then costs the limiter its oldest entries one by one, never the pod its
    memory, and never lifts every limit at once (emptying the map did: 10,000 fresh addresses,
    easy with IPv6, freed every penalised one).
    """

    __slots__ = ("_buckets", "_burst", "_clock", "_max_keys", "_rate")

    def __init__(
        self, rate: float, burst: int, clock: Callable[[], float], *, max_keys: int = 10_000
    ) -> None:
        self._rate = rate
        self._burst = burst
        self._clock = clock
        self._max_keys = max_keys
        self._buckets: dict[str, TokenBucket] = {}

    def limited(self, key: str) -> float:
        """Seconds until `key` may try again (0: it may now); spends nothing."""
        bucket = self._buckets.get(key)
        return 0.0 if bucket is None else bucket.wait()

    def count_limited(self) -> int:
        """Keys that may not try again now (a walk over the map: for a scrape, not a hot path)."""
        return sum(1 for bucket in self._buckets.values() if bucket.wait() > 0)

    def spend(self, key: str) -> None:
        """Count one event for `key`."""
        buckets = self._buckets
        bucket = buckets.pop(key, None)  # re-inserted below: the newest event goes last
        if bucket is None:
            if len(buckets) >= self._max_keys:
                del buckets[next(iter(buckets))]
            bucket = TokenBucket(self._rate, self._burst, self._clock)
        buckets[key] = bucket
        bucket.take()


class WindowCounter:
    """Counts events in a sliding window of `window` seconds (allocated on first use)."""

    __slots__ = ("_clock", "_events", "_window")

    def __init__(self, window: float, clock: Callable[[], float]) -> None:
        self._window = window
        self._clock = clock
        self._events: deque[float] | None = None

    def add(self) -> int:
        """Record one event; return how many fall inside the window."""
        now = self._clock()
        if self._events is None:
            self._events = deque()
        events = self._events
        events.append(now)
        while events and events[0] <= now - self._window:
            events.popleft()
        return len(events)
