"""One pub/sub connection to one Redis node, as an explicit state machine.

    CONNECTING ──▶ SUBSCRIBING ──▶ LIVE
        │  ▲            │            │
        ▼  │            ▼            │
       RETRYING ◀───────┴────────────┘        any state ──▶ CLOSED (final)

The broker's supervisor task for the link drives it: connect, subscribe every channel the node
carries and re-read their latest keys, serve; on any failure wait (jittered backoff) and start
over. Only a LIVE link counts toward readiness and carries new subscriptions.
"""

from __future__ import annotations

import asyncio
import enum

from redis.asyncio.connection import Connection

__all__ = ["IllegalLinkTransition", "Link", "LinkState"]


class LinkState(enum.Enum):
    #: opening the connection
    CONNECTING = "connecting"
    #: connected; subscribing the node's channels and resyncing their latest envelopes
    SUBSCRIBING = "subscribing"
    #: every subscription confirmed; messages flow
    LIVE = "live"
    #: the connection failed or was lost; waiting before the next attempt
    RETRYING = "retrying"
    #: given up for good (the broker stopped, or the node left the cluster)
    CLOSED = "closed"


_ALLOWED: dict[LinkState, frozenset[LinkState]] = {
    LinkState.CONNECTING: frozenset({LinkState.SUBSCRIBING, LinkState.RETRYING, LinkState.CLOSED}),
    LinkState.SUBSCRIBING: frozenset({LinkState.LIVE, LinkState.RETRYING, LinkState.CLOSED}),
    LinkState.LIVE: frozenset({LinkState.RETRYING, LinkState.CLOSED}),
    LinkState.RETRYING: frozenset({LinkState.CONNECTING, LinkState.CLOSED}),
    LinkState.CLOSED: frozenset(),
}


class IllegalLinkTransition(RuntimeError):
    """A step the link's state machine does not allow (a bug in the broker, never an outage)."""

    def __init__(self, node: str, current: LinkState, wanted: LinkState) -> None:
        expected = ", ".join(sorted(s.value for s in _ALLOWED[current])) or "nothing"
        super().__init__(
            f"pub/sub link to {node} is {current.value}; cannot become {wanted.value}"
            f" (expected {expected})"
        )


class Link:
    """A node's pub/sub connection, the channels confirmed on it, and its lifecycle state."""

    def __init__(self, node: str, probe_channel: bytes) -> None:
        #: `host:port` (log-safe: never credentials)
        self.node = node
        #: this pod's probe channel on the node
        self.probe_channel = probe_channel
        self._state = LinkState.CONNECTING
        self._live = asyncio.Event()
        #: how many times the link became LIVE (more than once: it reconnected)
        self.times_live = 0
        self.conn: Connection | None = None
        #: channels the server confirmed on the current connection
        self.channels: set[bytes] = set()
        #: unsubscribes we asked for (any other unsubscribe came from the server)
        self.leaving: dict[bytes, int] = {}
        self.supervisor: asyncio.Task[None] | None = None
        self.reader: asyncio.Task[None] | None = None
        self.probe: asyncio.Future[None] | None = None
        self.probe_token = b""

    @property
    def state(self) -> LinkState:
        return self._state

    @property
    def is_live(self) -> bool:
        return self._state is LinkState.LIVE

    @property
    def closed(self) -> bool:
        return self._state is LinkState.CLOSED

    def transition(self, wanted: LinkState) -> None:
        """Move to `wanted`, or raise IllegalLinkTransition naming both states."""
        if wanted not in _ALLOWED[self._state]:
            raise IllegalLinkTransition(self.node, self._state, wanted)
        self._state = wanted
        if wanted is LinkState.LIVE:
            self.times_live += 1
            self._live.set()
        else:
            self._live.clear()

    def close(self) -> None:
        """Give the link up for good (idempotent); its supervisor is cancelled by the caller."""
        if self._state is not LinkState.CLOSED:
            self.transition(LinkState.CLOSED)

    async def wait_live(self) -> None:
        """Return once the link is LIVE (at once if it is)."""
        await self._live.wait()

    def rebuild(self) -> None:
        """Drop the connection; the supervisor reconnects and re-subscribes."""
        if self.reader is not None:
            self.reader.cancel()
