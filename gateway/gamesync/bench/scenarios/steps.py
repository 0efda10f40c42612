"""Steps every scenario shares: connecting a client group, sampling RSS, CPU and medians."""

from __future__ import annotations

import asyncio
import contextlib
import time
from typing import Any

from gamesync.bench.procs import Proc
from gamesync.bench.results import median
from gamesync.bench.rig import ClientGroup
from gamesync.bench.scenarios.contract import Context

__all__ = ["MIB", "RssSampler", "connect", "med", "med_latency", "pct"]

MIB = 1024 * 1024


async def connect(ctx: Context, group: ClientGroup, label: str) -> dict[str, Any]:
    """Open the group's connections behind a progress bar; note any that failed."""
    result = await ctx.display.counting(
        label, group.count, lambda update: group.connect(ctx.opts.connect_timeout, update)
    )
    if result["failed"]:
        ctx.display.note(f"[yellow]{label}: {result['failed']} failed: {result['failures']}")
    return result


class RssSampler:
    """Samples the summed RSS of some processes every ``period`` seconds in the background."""

    def __init__(self, procs: list[Proc], period: float = 0.25) -> None:
        self.procs = procs
        self.period = period
        self.series: list[tuple[float, float]] = []
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self.t0 = time.monotonic()
        self._task = asyncio.create_task(self._run())

    async def _run(self) -> None:
        while True:
            rss = sum(p.rss() for p in self.procs) / MIB
            self.series.append((round(time.monotonic() - self.t0, 3), round(rss, 2)))
            await asyncio.sleep(self.period)

    async def stop(self) -> list[tuple[float, float]]:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        return self.series


def pct(cpu: float, secs: float) -> float:
    """CPU seconds over a window as a percentage of one core."""
    return round(100.0 * cpu / secs, 1) if secs > 0 else 0.0


def med(rows: list[dict[str, Any]], key: str) -> float:
    """The median of ``key`` over rows."""
    return round(median([float(r[key]) for r in rows]), 3)


def med_latency(rows: list[dict[str, Any]]) -> dict[str, float]:
    """The median over rows of each latency percentile."""
    keys = ("p50", "p90", "p99", "p999", "max")
    return {k: round(median([r["latency_ms"][k] for r in rows]), 3) for k in keys}
