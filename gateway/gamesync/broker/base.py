"""The broker interface: what the hub needs from a fan-out engine (DESIGN §1, §3)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

from gamesync.envelope import Envelope
from gamesync.errors import ConfigError

__all__ = ["Broker", "EnvelopeHandler", "create_broker"]

#: Called for every envelope of a subscribed game, in arrival order, on the event loop.
EnvelopeHandler = Callable[[Envelope], None]


class Broker(Protocol):
    """Subscribe/unsubscribe per game, publish atomically-if-newer, read the latest envelope.

    Implementations: the in-process `MemoryBroker` (one node) and the Redis brokers. The hub
    never knows which one it talks to. Methods raise `BrokerUnavailable` when the engine cannot
    be reached; after an outage the broker re-subscribes and re-offers every subscribed game's
    latest envelope through the handler, so clients converge without reconnecting.
    """

    async def start(self, handler: EnvelopeHandler) -> None:
        """Connect and deliver envelopes of subscribed games to `handler`."""

    async def stop(self) -> None:
        """Disconnect and release every resource."""

    async def subscribe(self, game_id: int) -> None:
        """Start receiving the game's envelopes (returns once the subscription is live)."""

    async def unsubscribe(self, game_id: int) -> None:
        """Stop receiving the game's envelopes."""

    async def publish(self, envelope: Envelope) -> bool:
        """Store as latest and fan out if `version` is newer; False when stale."""
        ...

    async def latest(self, game_id: int) -> Envelope | None:
        """The newest envelope stored for the game, if any."""
        ...

    @property
    def ready(self) -> bool:
        """Reachable, with every subscription established."""
        ...

    def describe(self) -> str:
        """A log-safe description (no password)."""
        ...


def create_broker(url: str, *, latest_ttl_seconds: int) -> Broker:
    """Build the broker a `--broker` URL names."""
    if url.startswith("memory://"):
        from gamesync.broker.memory import MemoryBroker

        return MemoryBroker()
    if url.startswith(("redis://", "rediss://", "redis+cluster://", "rediss+cluster://")):
        try:
            from gamesync.broker.redis import create_redis_broker
        except ImportError as exc:  # pragma: no cover - redis is a runtime dependency
            raise ConfigError(f"the Redis broker is not available: {exc}") from exc
        return create_redis_broker(url, latest_ttl_seconds=latest_ttl_seconds)
    raise ConfigError(f"unknown broker URL scheme in {url.split('://')[0]!r}")
