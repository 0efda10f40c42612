"""Small rate limiters for client messages. Pure apart from the injected clock."""

from __future__ import annotations

from collections import deque
from collections.abc import Callable

__all__ = ["TokenBucket", "WindowCounter"]


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
