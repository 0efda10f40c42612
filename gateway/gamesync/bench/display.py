"""What a person watching a benchmark sees: rich progress bars and the summary table."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

__all__ = ["Display"]

T = TypeVar("T")


class Display:
    """Progress bars and tables on stderr (stdout stays clean for the result path)."""

    def __init__(self, quiet: bool = False) -> None:
        self.console = Console(stderr=True, quiet=quiet)

    def note(self, text: str) -> None:
        self.console.log(text)

    def _progress(self) -> Progress:
        return Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            TextColumn("{task.completed:>8.0f}/{task.total:.0f}"),
            TimeElapsedColumn(),
            console=self.console,
            transient=True,
        )

    async def counting(
        self, label: str, total: int, work: Callable[[Callable[[int], None]], Awaitable[T]]
    ) -> T:
        """Run ``work(update)`` with a bar that ``update(done)`` moves."""
        with self._progress() as progress:
            task = progress.add_task(label, total=total)
            return await work(lambda done: progress.update(task, completed=done))

    async def timed(self, label: str, seconds: float, work: Awaitable[T]) -> T:
        """Await ``work`` with a bar that fills over ``seconds`` of wall time."""
        with self._progress() as progress:
            task = progress.add_task(label, total=max(1, int(seconds)))
            started = time.monotonic()
            fut = asyncio.ensure_future(work)
            while not fut.done():
                progress.update(task, completed=min(seconds, time.monotonic() - started))
                await asyncio.wait([fut], timeout=0.2)
            return fut.result()

    def table(self, title: str, rows: list[dict[str, Any]], columns: list[str]) -> None:
        table = Table(title=title)
        for col in columns:
            table.add_column(col, justify="right" if col not in ("system", "target") else "left")
        for row in rows:
            table.add_row(*(_fmt(row.get(col)) for col in columns))
        self.console.print(table)


def _fmt(value: object) -> str:
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "NO"
    if isinstance(value, float):
        return f"{value:,.3f}" if abs(value) < 10 else f"{value:,.0f}"
    if isinstance(value, int):
        return f"{value:,}"
    return str(value)
