"""`--demo`: publish a simulated game about once a second through the real publish path."""

from __future__ import annotations

import asyncio
import json
import logging
import time
from typing import TYPE_CHECKING

from gamesync.envelope import parse_envelope, stamp_published_at

if TYPE_CHECKING:
    from gamesync.gateway import Gateway

__all__ = ["DemoFeed"]

log = logging.getLogger("gamesync.demo")


class DemoFeed:
    """Owns the demo task: steps a `gamesync.demo.DemoGame` and publishes every envelope."""

    seats = ("1", "2", "3", "4")

    def __init__(self, gateway: Gateway, game_id: int = 1, interval: float = 1.0) -> None:
        from gamesync.demo import DemoGame  # the simulated game is only loaded for --demo

        self.gateway = gateway
        self.game_id = game_id
        self.interval = interval
        self.game = DemoGame(game_id)
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run(), name="demo feed")

    async def _run(self) -> None:
        while True:
            document = self.game.step()
            envelope = parse_envelope(json.dumps(document))
            envelope = stamp_published_at(envelope, time.time())
            try:
                await self.gateway.publish(envelope)
            except Exception:  # keep playing: the demo must survive a broker blip
                log.warning("demo publish failed", exc_info=True)
            await asyncio.sleep(self.interval)

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
