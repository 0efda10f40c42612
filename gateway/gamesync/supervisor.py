"""Background tasks that never die silently: restarted with backoff, or the pod reports unhealthy.

Every long-lived task of a gateway (the sweeper, the key and runtime-config watchers; the broker's
readers and probe may use it too) runs under a `Supervisor`. A task that raises is logged once
with its traceback (`ErrorLog`, rate-limited), then restarted after a jittered, capped backoff.
One that keeps failing (`max_failures` within `window` seconds) is given up on: the supervisor
then reports it in `failed`, which turns `/healthz` to 503 so that the kubelet restarts the
pod. A task that returns normally has finished its work and is not restarted.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections import Counter, deque
from collections.abc import Awaitable, Callable

__all__ = ["ErrorLog", "Supervisor"]

log = logging.getLogger("gamesync.supervisor")


class ErrorLog:
    """Logs an error of a kind once with its traceback, then at most once per `interval`.

    A loop that fails on every item (every session, every message) must not write a traceback
    per item: the first one says what and why, later ones are counted and summarised.
    """

    __slots__ = ("_clock", "_interval", "_logger", "_seen")

    def __init__(
        self,
        logger: logging.Logger,
        *,
        interval: float = 60.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._logger = logger
        self._interval = interval
        self._clock = clock
        #: kind -> (when last logged, errors since then not logged)
        self._seen: dict[str, tuple[float, int]] = {}

    def error(self, kind: str, message: str, exc: BaseException) -> bool:
        """Log `message` and `exc` unless `kind` was logged within the interval; True if logged."""
        now = self._clock()
        seen = self._seen.get(kind)
        if seen is not None and now - seen[0] < self._interval:
            self._seen[kind] = (seen[0], seen[1] + 1)
            return False
        suppressed = seen[1] if seen is not None else 0
        if len(self._seen) >= 1000:  # kinds are few and fixed; never let the map grow
            self._seen.clear()
        self._seen[kind] = (now, 0)
        more = f" ({suppressed} more like it since the last report)" if suppressed else ""
        self._logger.error("%s%s", message, more, exc_info=exc)
        return True


class Supervisor:
    """Runs named background tasks; restarts one that raises, gives up on one that keeps failing."""

    def __init__(
        self,
        *,
        backoff_base: float = 0.5,
        backoff_cap: float = 30.0,
        max_failures: int = 5,
        window: float = 300.0,
        clock: Callable[[], float] = time.monotonic,
        rng: random.Random | None = None,
    ) -> None:
        self._base = backoff_base
        self._cap = backoff_cap
        self._max_failures = max_failures
        self._window = window
        self._clock = clock
        self._rng = rng or random.Random()
        self._errors = ErrorLog(log)
        self._tasks: dict[str, asyncio.Task[None]] = {}
        #: restarts per task name, for the `gamesync_task_restarts_total` metric
        self.restarts: Counter[str] = Counter()
        #: tasks given up on: the pod is unhealthy while this is not empty
        self.failed: list[str] = []

    def spawn(self, name: str, factory: Callable[[], Awaitable[None]]) -> asyncio.Task[None]:
        """Run `factory()` as the task `name`, supervised; a restart calls `factory` again."""
        if name in self._tasks and not self._tasks[name].done():
            raise ValueError(f"a task named {name!r} is already running")
        task = asyncio.get_running_loop().create_task(self._keep(name, factory), name=name)
        self._tasks[name] = task
        return task

    @property
    def tasks(self) -> list[asyncio.Task[None]]:
        """The supervising tasks (one per name), finished ones included."""
        return list(self._tasks.values())

    async def _keep(self, name: str, factory: Callable[[], Awaitable[None]]) -> None:
        failures: deque[float] = deque()
        while True:
            try:
                await factory()
                return  # finished its work
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                now = self._clock()
                failures.append(now)
                while failures and failures[0] <= now - self._window:
                    failures.popleft()
                if len(failures) >= self._max_failures:
                    log.critical(
                        "background task %s failed %d times in %.0fs; giving up: "
                        "the pod reports unhealthy so that it is restarted",
                        name,
                        len(failures),
                        self._window,
                        exc_info=exc,
                    )
                    self.failed.append(name)
                    return
                self._errors.error(name, f"background task {name} failed; restarting it", exc)
                self.restarts[name] += 1
            delay = min(self._cap, self._base * 2 ** (len(failures) - 1))
            await asyncio.sleep(delay * self._rng.uniform(0.5, 1.0))

    async def stop(self) -> None:
        """Cancel every task and wait for them to end."""
        tasks = list(self._tasks.values())
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        self._tasks.clear()
