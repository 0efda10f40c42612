"""A backend committing game states at a steady rate, through the shipped `Publisher`.

Every snapshot carries `t`, the wall-clock time of its commit, so clients measure
commit→receive latency. `committed` is the newest version handed to the publisher per game:
what "the game's newest version" means when the scenarios check convergence.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

from gamesync.publisher import Publisher

__all__ = ["Feed"]


class Feed:
    """Commits `rate` snapshots a second, round-robin over `games`, until stopped."""

    def __init__(
        self,
        redis_url: str,
        games: list[int],
        rate: float,
        *,
        pad: int = 64,
        members: dict[int, list[str]] | None = None,
        **publisher: Any,
    ) -> None:
        self.games = games
        self.rate = rate
        self.pad = "x" * pad
        #: the `members` each game's envelopes list (for `--authz members`); none: no field
        self.members = members or {}
        self.publisher = Publisher(redis_url, **publisher)
        self.committed: dict[int, int] = dict.fromkeys(games, 0)
        self.commits = 0
        self._task: asyncio.Task[None] | None = None

    def commit(self, game: int) -> None:
        """Commit the next version of `game` (handed to the publisher, never waiting)."""
        version = self.committed[game] + 1
        self.committed[game] = version
        self.commits += 1
        envelope: dict[str, Any] = {
            "gameId": game,
            "version": version,
            "snapshot": {"t": time.time(), "pad": self.pad},
        }
        if game in self.members:
            envelope["members"] = self.members[game]
        self.publisher.publish_nowait(envelope)

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run())

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        interval = 1.0 / self.rate
        due = loop.time()
        i = 0
        while True:
            self.commit(self.games[i % len(self.games)])
            i += 1
            due += interval
            delay = due - loop.time()
            if delay > 0:
                await asyncio.sleep(delay)  # pacing the load, not synchronising
            elif i % 100 == 0:
                await asyncio.sleep(0)  # behind schedule: still let the loop breathe

    async def stop(self) -> None:
        """Stop committing (what was committed may still be in the publisher's queue)."""
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None

    async def flush(self, timeout: float) -> bool:
        return await self.publisher.flush(timeout)

    async def aclose(self) -> None:
        await self.stop()
        await self.publisher.aclose(flush_timeout=0.5)
