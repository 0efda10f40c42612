"""The backend-side publisher: hand a committed snapshot to Redis (DESIGN §3, docs/publishing.md).

Call it after the game's transaction commits. It runs the package's publish script (EVALSHA,
falling back to the script body on NOSCRIPT), retries transient failures a few times with a
short backoff, counts what happened, and never holds up the caller's mutation when used with
`publish_nowait` (a bounded, per-game conflating queue drained by one background task).
`traceparent` and every other field go out byte for byte; `publishedAt` is added when absent
so gateways can measure publish→receive lag. With OpenTelemetry set up in the backend, each
publish is a PRODUCER span in the caller's trace and, when the envelope has no `traceparent`
yet, that span's context is stamped in, so the gateways' spans join the same trace.

    async with Publisher("redis://redis:6379/0") as publisher:
        await publisher.publish({"gameId": 42, "version": 17, "snapshot": {...}})
        publisher.publish_nowait(envelope)   # from a request handler: never waits
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from opentelemetry.trace import TracerProvider
from redis.exceptions import (
    BusyLoadingError,
    ClusterDownError,
    RedisError,
    TryAgainError,
)
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from gamesync.broker._redis_common import split_broker_url
from gamesync.broker.redis import PublishScript, open_command_client, publish_payload
from gamesync.envelope import Envelope, parse_envelope, stamp_published_at
from gamesync.errors import BrokerUnavailable
from gamesync.tracing import publish_span

__all__ = ["Publisher", "PublisherStats", "publish_sync"]

log = logging.getLogger("gamesync.publisher")

#: Failures worth another try: the connection, a timeout, a cluster mid-failover or loading.
_TRANSIENT: tuple[type[BaseException], ...] = (
    RedisConnectionError,
    RedisTimeoutError,
    ClusterDownError,
    TryAgainError,
    BusyLoadingError,
    OSError,
    TimeoutError,
)

EnvelopeLike = Envelope | Mapping[str, Any] | bytes | str


@dataclass(slots=True)
class PublisherStats:
    """What a publisher did (plain counters, for the backend's own metrics)."""

    published: int = 0
    #: refused by the script: a newer (or the same) version was already stored
    stale: int = 0
    #: publishes that failed after every attempt (or with a permanent error)
    failures: int = 0
    #: extra attempts after a transient failure
    retries: int = 0
    #: `publish_nowait` envelopes refused because the queue was full
    dropped: int = 0
    #: queued envelopes replaced by a newer version of the same game before they went out
    superseded: int = 0


def _to_envelope(envelope: EnvelopeLike) -> Envelope:
    if isinstance(envelope, Envelope):
        return envelope
    if isinstance(envelope, Mapping):
        raw = json.dumps(envelope, separators=(",", ":"), ensure_ascii=False).encode()
        return parse_envelope(raw)
    return parse_envelope(envelope)


class Publisher:
    """Publishes envelopes to Redis through the publish script, after the game's commit."""

    def __init__(
        self,
        url: str,
        *,
        latest_ttl_seconds: int = 86_400,
        tracer_provider: TracerProvider | None = None,
        attempts: int = 3,
        backoff: tuple[float, ...] = (0.05, 0.1),
        backoff_cap: float = 0.2,
        timeout: float = 1.0,
        queue_size: int = 10_000,
    ) -> None:
        if attempts < 1:
            raise ValueError("attempts must be at least 1")
        redis_url, options = split_broker_url(url)
        self._client = open_command_client(redis_url, timeout=min(timeout, options.command_timeout))
        self._script = PublishScript(
            self._client,
            sharded=redis_url.startswith(("redis+cluster://", "rediss+cluster://")),
            ttl_seconds=latest_ttl_seconds,
        )
        self._attempts = attempts
        self._backoff = backoff or (0.0,)
        self._backoff_cap = backoff_cap
        self._timeout = timeout
        self._queue_size = queue_size
        #: game id -> newest envelope waiting to go out (insertion order = first queued first)
        self._pending: dict[int, Envelope] = {}
        self._wakeup = asyncio.Event()
        self._worker: asyncio.Task[None] | None = None
        self._idle = asyncio.Event()
        self._idle.set()
        self.stats = PublisherStats()
        #: the backend's own provider (None: OpenTelemetry's global one, a no-op unless set up)
        self._tracer_provider = tracer_provider

    async def __aenter__(self) -> Publisher:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    async def publish(self, envelope: EnvelopeLike) -> bool:
        """Publish now: True if it went out, False if not newer; BrokerUnavailable on failure.

        Raises EnvelopeError for an invalid envelope (never retried).
        """
        with publish_span(_to_envelope(envelope), self._tracer_provider) as env:
            return await self._publish(env)

    async def _publish(self, env: Envelope) -> bool:
        raw = publish_payload(env, now=time.time())
        for attempt in range(self._attempts):
            try:
                async with asyncio.timeout(self._timeout):
                    published = await self._script.run(env.game_id, env.version, raw)
            except _TRANSIENT as exc:
                if attempt + 1 >= self._attempts:
                    self.stats.failures += 1
                    raise BrokerUnavailable(
                        f"publish of game {env.game_id} v{env.version} failed: {exc!r}"
                    ) from exc
                self.stats.retries += 1
                delay = self._backoff[min(attempt, len(self._backoff) - 1)]
                await asyncio.sleep(min(delay, self._backoff_cap))
            except RedisError as exc:  # permanent: auth, ACL, a script error
                self.stats.failures += 1
                raise BrokerUnavailable(f"publish of game {env.game_id} refused: {exc}") from exc
            else:
                if published:
                    self.stats.published += 1
                else:
                    self.stats.stale += 1
                return published
        raise AssertionError("unreachable")  # pragma: no cover

    def publish_nowait(self, envelope: EnvelopeLike) -> bool:
        """Queue for publishing in the background; never waits. False if the queue is full.

        Only the newest queued envelope per game is kept: snapshots are whole states, so an
        older one that has not gone out yet is superseded. Failures are counted and logged.
        """
        # The caller's trace context is captured now, while its span is current.
        with publish_span(_to_envelope(envelope), self._tracer_provider) as env:
            pass
        env = stamp_published_at(env, time.time())
        queued = self._pending.get(env.game_id)
        if queued is not None:
            if env.version > queued.version:
                self._pending[env.game_id] = env
                self.stats.superseded += 1
            return True
        if len(self._pending) >= self._queue_size:
            self.stats.dropped += 1
            log.warning("publish queue full; dropped game %s v%s", env.game_id, env.version)
            return False
        self._pending[env.game_id] = env
        self._idle.clear()
        self._wakeup.set()
        if self._worker is None or self._worker.done():
            self._worker = asyncio.get_running_loop().create_task(
                self._drain(), name="gamesync-publisher"
            )
        return True

    async def flush(self, timeout: float | None = None) -> bool:
        """Wait until every queued envelope was attempted; False if `timeout` passed first."""
        try:
            async with asyncio.timeout(timeout):
                await self._idle.wait()
        except TimeoutError:
            return False
        return True

    async def _drain(self) -> None:
        while True:
            if not self._pending:
                self._idle.set()
                self._wakeup.clear()
                await self._wakeup.wait()
                continue
            game_id = next(iter(self._pending))
            env = self._pending.pop(game_id)
            try:
                await self.publish(env)
            except BrokerUnavailable as exc:
                log.warning("%s", exc)
            except Exception:  # never let the worker die: count, log, carry on
                self.stats.failures += 1
                log.exception("publishing game %s failed", game_id)

    async def aclose(self, *, flush_timeout: float = 2.0) -> None:
        """Give queued envelopes up to `flush_timeout` seconds to go out, then disconnect."""
        if self._pending:
            await self.flush(flush_timeout)
        if self._worker is not None:
            self._worker.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._worker
            self._worker = None
        with contextlib.suppress(RedisError, OSError):
            await self._client.aclose()


def publish_sync(broker_url: str, envelope: EnvelopeLike) -> bool:
    """Publish one envelope from synchronous code (the CLI); True if it was newer."""

    async def once() -> bool:
        async with Publisher(broker_url) as publisher:
            return await publisher.publish(envelope)

    return asyncio.run(once())
