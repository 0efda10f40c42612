"""Which cluster gets a pass next: a deduplicated queue of keys, each due at a time.

The same rules as controller-runtime's workqueue: a key asked for several times before its
pass starts gets one pass; a key asked for while its pass runs gets exactly one more pass after
it (never two at once); a key is due at the earliest time anyone asked for. Time comes from an
injected clock, so the rules are tested without waiting.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable, Hashable
from typing import Generic, TypeVar

__all__ = ["QueueClosed", "WorkQueue"]

K = TypeVar("K", bound=Hashable)


class QueueClosed(Exception):
    """The queue was closed: no more keys will be handed out."""


class WorkQueue(Generic[K]):
    """Keys with due times; `get` hands out the earliest due key that is not being worked on."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._due: dict[K, float] = {}
        self._active: set[K] = set()
        self._closed = False
        self._changed = asyncio.Event()

    def add(self, key: K, delay: float = 0.0) -> None:
        """Ask for a pass of `key` in `delay` seconds (or sooner, if already asked for sooner)."""
        if self._closed:
            return
        at = self._clock() + max(0.0, delay)
        if key not in self._due or at < self._due[key]:
            self._due[key] = at
            self._changed.set()

    def forget(self, key: K) -> None:
        """Drop any pass asked for `key` (it was deleted); one in progress still finishes."""
        self._due.pop(key, None)

    def done(self, key: K) -> None:
        """The pass of `key` ended; a pass asked for meanwhile can now start."""
        self._active.discard(key)
        self._changed.set()

    def pop_due(self) -> K | None:
        """The earliest due key that is not being worked on (now active), or None."""
        now = self._clock()
        ready = [(at, k) for k, at in self._due.items() if at <= now and k not in self._active]
        if not ready:
            return None
        _, key = min(ready, key=lambda pair: pair[0])
        del self._due[key]
        self._active.add(key)
        return key

    def wait_time(self) -> float | None:
        """Seconds until the next key not being worked on is due; None: nothing is asked for."""
        waiting = [at for k, at in self._due.items() if k not in self._active]
        if not waiting:
            return None
        return max(0.0, min(waiting) - self._clock())

    def __len__(self) -> int:
        return len(self._due)

    @property
    def active(self) -> frozenset[K]:
        """Keys whose pass is in progress."""
        return frozenset(self._active)

    def close(self) -> None:
        """Hand out nothing more; waiting `get` calls raise QueueClosed."""
        self._closed = True
        self._due.clear()
        self._changed.set()

    async def get(self) -> K:
        """Wait for the next due key and mark it active; QueueClosed once the queue is closed."""
        while True:
            if self._closed:
                raise QueueClosed
            # Clear before looking: an `add` after this line wakes the wait below.
            self._changed.clear()
            key = self.pop_due()
            if key is not None:
                return key
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self.wait_time()):
                    await self._changed.wait()
