"""The broker contract: everything the gateway needs from a fan-out engine (DESIGN §1, §3).

`tests/broker/test_contract.py` runs one behavioural suite against every implementation.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

from gamesync.broker.stats import BrokerStats
from gamesync.envelope import Envelope
from gamesync.supervisor import Supervisor

__all__ = ["Broker", "EnvelopeHandler"]

#: Called for every envelope of a subscribed game, in arrival order, on the event loop.
EnvelopeHandler = Callable[[Envelope], None]


class Broker(Protocol):
    """Fan-out between gateway pods: per-game subscriptions, publish-if-newer, a latest envelope.

    The guarantee: for each game the broker keeps the newest envelope published (by `version`)
    as its *latest*, and `publish` stores and fans out an envelope atomically *only if* its
    version is newer than that latest one; anything else is refused as stale and changes
    nothing. So however many publishers race, every subscriber sees a game's versions in
    increasing order, and `latest` never goes back.

    Delivery is at-most-once; the latest envelope makes a lost one harmless: a subscriber reads
    `latest` after `subscribe`, and after an outage the broker re-subscribes and re-offers every
    subscribed game's latest envelope through the handler, so the hub (which drops what is not
    newer) converges without clients reconnecting. Methods that need the engine raise
    `BrokerUnavailable` when it cannot be reached; `ready` says whether it can now.

    Implementations: `MemoryBroker` (one process) and the Redis brokers (standalone, Cluster);
    `gamesync.broker.schemes` maps URL schemes to them. The hub never knows which one it has.
    """

    @property
    def stats(self) -> BrokerStats:
        """Counters for `/metrics`, updated in place (the same object for the broker's life)."""
        ...

    @property
    def ready(self) -> bool:
        """Started, the engine reachable, and every subscription established."""
        ...

    def describe(self) -> str:
        """A log-safe description of where the broker points (never a password)."""
        ...

    async def start(self, handler: EnvelopeHandler, supervisor: Supervisor | None = None) -> None:
        """Begin delivering subscribed games' envelopes to `handler`; an unreachable engine
        makes the broker unready, never makes `start` fail. Long-lived tasks run under
        `supervisor` (the gateway's: restarted, or the pod unhealthy), else under one of the
        broker's own."""

    async def stop(self) -> None:
        """Disconnect and release every resource; no delivery after it returns."""

    async def subscribe(self, game_id: int) -> None:
        """Start receiving the game's envelopes; returns once the subscription is live."""

    async def unsubscribe(self, game_id: int) -> None:
        """Stop receiving the game's envelopes."""

    async def latest(self, game_id: int) -> Envelope | None:
        """The newest envelope stored for the game, if any."""
        ...

    async def publish(self, envelope: Envelope) -> bool:
        """Store as latest and fan out, atomically, if `version` is newer; False when stale."""
        ...
