"""The in-process broker: one node, no Redis (dev mode, tests, single-pod setups)."""

from __future__ import annotations

import asyncio
import time

from gamesync.broker.base import EnvelopeHandler
from gamesync.broker.stats import BrokerStats
from gamesync.envelope import Envelope
from gamesync.supervisor import Supervisor

__all__ = ["MemoryBroker"]


class MemoryBroker:
    """Keeps each game's latest envelope in a dict and hands new ones to the hub (a `Broker`)."""

    def __init__(self) -> None:
        self.stats = BrokerStats()
        self._latest: dict[int, Envelope] = {}
        self._subscribed: set[int] = set()
        self._handler: EnvelopeHandler | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    async def start(self, handler: EnvelopeHandler, supervisor: Supervisor | None = None) -> None:
        self._handler = handler
        self._loop = asyncio.get_running_loop()

    async def stop(self) -> None:
        self._handler = None
        self._subscribed.clear()
        self.stats.subscriptions = 0

    async def subscribe(self, game_id: int) -> None:
        self._subscribed.add(game_id)
        self.stats.subscriptions = len(self._subscribed)

    async def unsubscribe(self, game_id: int) -> None:
        self._subscribed.discard(game_id)
        self.stats.subscriptions = len(self._subscribed)

    async def publish(self, envelope: Envelope) -> bool:
        current = self._latest.get(envelope.game_id)
        if current is not None and envelope.version <= current.version:
            self.stats.stale_publishes += 1
            return False
        self._latest[envelope.game_id] = envelope
        self.stats.publishes += 1
        if envelope.game_id in self._subscribed and self._handler and self._loop:
            # Delivered from the loop, like a message arriving from Redis: the publisher's
            # answer never waits on the fan-out.
            self._loop.call_soon(self._receive, envelope)
        return True

    def _receive(self, envelope: Envelope) -> None:
        handler = self._handler
        if handler is None or envelope.game_id not in self._subscribed:
            return  # stopped or unsubscribed while the delivery was queued
        self.stats.received += 1
        if envelope.published_at is not None:
            self.stats.observe_lag(time.time() - envelope.published_at)
        handler(envelope)

    async def latest(self, game_id: int) -> Envelope | None:
        return self._latest.get(game_id)

    @property
    def ready(self) -> bool:
        return self._handler is not None

    @property
    def subscribed_games(self) -> frozenset[int]:
        return frozenset(self._subscribed)

    def describe(self) -> str:
        return "memory://"
