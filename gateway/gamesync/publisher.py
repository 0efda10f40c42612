"""The backend-side publisher: hand a committed snapshot to Redis (DESIGN §3, docs/publishing.md).

Call it after the game's transaction commits. It runs the package's publish script (EVALSHA,
falling back to the script body on NOSCRIPT) and counts what happened. `publish` retries
transient failures a few times and then raises; `publish_nowait` never holds up the caller's
mutation: it keeps the newest envelope per game in a bounded queue that one background task
sends, retrying with capped, jittered backoff until each game's newest envelope went out or a
newer one superseded it, however long Redis is away (`backlog()` says how far behind it is).
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
import random
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from opentelemetry.trace import TracerProvider

from gamesync.backoff import full_jitter
from gamesync.broker.redis.commands import (
    TRANSIENT,
    UNAVAILABLE,
    PublishScript,
    error_text,
    open_command_client,
    publish_payload,
)
from gamesync.broker.redis.options import split_broker_url
from gamesync.broker.schemes import BrokerKind, scheme_of, scheme_prefixes
from gamesync.envelope import Envelope, parse_envelope, stamp_published_at
from gamesync.errors import BrokerUnavailable, ConfigError
from gamesync.supervisor import Supervisor
from gamesync.tracing import publish_span

__all__ = ["Backlog", "Publisher", "PublisherStats", "publish_sync"]

log = logging.getLogger("gamesync.publisher")

EnvelopeLike = Envelope | Mapping[str, Any] | bytes | str


@dataclass(slots=True)
class PublisherStats:
    """What a publisher did (plain counters, for the backend's own metrics)."""

    published: int = 0
    #: refused by the script: a newer (or the same) version was already stored
    stale: int = 0
    #: `publish` calls that raised after every attempt (or at once, for a permanent error)
    failures: int = 0
    #: attempts that failed and were tried again (by `publish`, or by the queue)
    retries: int = 0
    #: `publish_nowait` envelopes refused because the queue was full
    dropped: int = 0
    #: queued envelopes replaced by a newer version of the same game before they went out
    superseded: int = 0


@dataclass(frozen=True, slots=True)
class Backlog:
    """What `publish_nowait` still has to send: export it as the backend's gauges."""

    #: games whose newest envelope has not gone out yet
    games: int
    #: seconds since the longest-waiting of them was queued (0 when none waits)
    oldest_seconds: float


@dataclass(slots=True)
class _Queued:
    """A game's newest unsent envelope, since when it waits (monotonic), its failed attempts."""

    envelope: Envelope
    since: float
    failures: int = 0


def _to_envelope(envelope: EnvelopeLike) -> Envelope:
    if isinstance(envelope, Envelope):
        return envelope
    if isinstance(envelope, Mapping):
        raw = json.dumps(envelope, separators=(",", ":"), ensure_ascii=False).encode()
        return parse_envelope(raw)
    return parse_envelope(envelope)


def _redis_url(url: str) -> tuple[str, float, bool]:
    """(redis-py URL, command timeout, cluster?) for a Redis broker URL; ConfigError otherwise."""
    scheme = scheme_of(url)
    if scheme.kind is not BrokerKind.REDIS:
        raise ConfigError(
            f"a {scheme.prefix} broker lives inside one gateway: publish to it over HTTP"
            f" (gamesync publish --url); the publisher needs one of"
            f" {', '.join(scheme_prefixes(BrokerKind.REDIS))}"
        )
    redis_url, options = split_broker_url(url)
    return redis_url, options.command_timeout, scheme.cluster


class Publisher:
    """Publishes envelopes to Redis through the publish script, after the game's commit."""

    def __init__(
        self,
        url: str,
        *,
        latest_ttl_seconds: int = 86_400,
        tracer_provider: TracerProvider | None = None,
        attempts: int = 3,
        backoff_base: float = 0.05,
        backoff_cap: float = 0.2,
        queue_backoff_cap: float = 1.0,
        timeout: float = 1.0,
        queue_size: int = 10_000,
    ) -> None:
        if attempts < 1:
            raise ValueError("attempts must be at least 1")
        redis_url, command_timeout, cluster = _redis_url(url)
        self._client = open_command_client(redis_url, timeout=min(timeout, command_timeout))
        self._script = PublishScript(self._client, sharded=cluster, ttl_seconds=latest_ttl_seconds)
        self._attempts = attempts
        self._backoff_base = backoff_base
        self._backoff_cap = backoff_cap
        self._queue_backoff_cap = queue_backoff_cap
        self._timeout = timeout
        self._queue_size = queue_size
        self._rng = random.Random()
        #: game id -> its newest unsent envelope (insertion order: the next one to try first)
        self._pending: dict[int, _Queued] = {}
        self._wakeup = asyncio.Event()
        self._worker: asyncio.Task[None] | None = None
        self._supervisor = Supervisor()
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
                return await self._attempt(env, raw)
            except TRANSIENT as exc:
                if attempt + 1 >= self._attempts:
                    self.stats.failures += 1
                    raise BrokerUnavailable(
                        f"publish of game {env.game_id} v{env.version} failed: {error_text(exc)}"
                    ) from exc
                self.stats.retries += 1
                await asyncio.sleep(
                    full_jitter(
                        attempt,
                        base=self._backoff_base,
                        cap=self._backoff_cap,
                        rng=self._rng.random,
                    )
                )
            except UNAVAILABLE as exc:  # permanent: auth, ACL, a script error
                self.stats.failures += 1
                raise BrokerUnavailable(
                    f"publish of game {env.game_id} refused: {error_text(exc)}"
                ) from exc
        raise AssertionError("unreachable")  # pragma: no cover

    async def _attempt(self, env: Envelope, raw: bytes) -> bool:
        """Run the script once (counted); raises what the client raised."""
        async with asyncio.timeout(self._timeout):
            published = await self._script.run(env.game_id, env.version, raw)
        if published:
            self.stats.published += 1
        else:
            self.stats.stale += 1
        return published

    def publish_nowait(self, envelope: EnvelopeLike) -> bool:
        """Queue for publishing in the background; never waits. False if the queue is full.

        Only the newest queued envelope per game is kept: snapshots are whole states, so an
        older one that has not gone out yet is superseded. A queued game is retried until its
        newest envelope went out (or was refused as stale); it is never given up.
        """
        # The caller's trace context is captured now, while its span is current.
        with publish_span(_to_envelope(envelope), self._tracer_provider) as env:
            pass
        env = stamp_published_at(env, time.time())
        queued = self._pending.get(env.game_id)
        if queued is not None:
            if env.version > queued.envelope.version:
                queued.envelope = env
                self.stats.superseded += 1
            return True
        if len(self._pending) >= self._queue_size:
            self.stats.dropped += 1
            log.warning("publish queue full; dropped game %s v%s", env.game_id, env.version)
            return False
        self._pending[env.game_id] = _Queued(env, time.monotonic())
        self._idle.clear()
        self._wakeup.set()
        if (self._worker is None or self._worker.done()) and not self._supervisor.failed:
            # Supervised: a bug that escapes the loop is logged and the worker restarted.
            self._worker = self._supervisor.spawn("publisher-queue", self._drain)
        return True

    @property
    def healthy(self) -> bool:
        """False once the queue's worker kept failing and was given up on (restart the
        process: queued envelopes are no longer being sent)."""
        return not self._supervisor.failed

    def backlog(self, now: float | None = None) -> Backlog:
        """Games waiting in the `publish_nowait` queue, and how long the oldest has waited."""
        if not self._pending:
            return Backlog(0, 0.0)
        now = time.monotonic() if now is None else now
        oldest = min(queued.since for queued in self._pending.values())
        return Backlog(len(self._pending), max(0.0, now - oldest))

    async def flush(self, timeout: float | None = None) -> bool:
        """Wait until every queued envelope went out (or was stale); False if `timeout` passed."""
        try:
            async with asyncio.timeout(timeout):
                await self._idle.wait()
        except TimeoutError:
            return False
        return True

    async def _drain(self) -> None:
        """The queue's one worker: oldest game first; while Redis fails, back off and rotate."""
        failures = 0  # attempts failed in a row: Redis is away, not one game
        while True:
            if not self._pending:
                self._idle.set()
                self._wakeup.clear()
                await self._wakeup.wait()
                continue
            game_id, queued = next(iter(self._pending.items()))
            sent = queued.envelope
            try:
                with publish_span(sent, self._tracer_provider) as env:
                    await self._attempt(env, publish_payload(env))
            except Exception as exc:  # never let the worker die: back off, try again
                self.stats.retries += 1
                # Once per outage, or once per game that fails while others go out.
                self._log_failure(game_id, sent, exc, quiet=failures > 0 or queued.failures > 0)
                queued.failures += 1
                # The game goes to the back of the queue, still holding its newest envelope.
                self._pending[game_id] = self._pending.pop(game_id)
                # Capped at 1 s (full jitter): after an outage the first retry comes at most a
                # second after Redis is back, and one retry a second costs Redis nothing.
                await asyncio.sleep(
                    full_jitter(
                        failures,
                        base=self._backoff_base,
                        cap=self._queue_backoff_cap,
                        rng=self._rng.random,
                    )
                )
                failures += 1
                continue
            if failures:
                backlog = self.backlog()
                log.info(
                    "publishing again after %d failed attempts; %d games pending",
                    failures,
                    backlog.games,
                )
                failures = 0
            if queued.envelope is sent:
                del self._pending[game_id]
            else:  # superseded while in flight: the newer one waits its turn, behind the others
                queued.since = time.monotonic()
                self._pending[game_id] = self._pending.pop(game_id)

    def _log_failure(self, game_id: int, env: Envelope, exc: Exception, *, quiet: bool) -> None:
        """A failed attempt: at WARNING unless `quiet` (then DEBUG), never once per retry."""
        if quiet:
            log.debug(
                "publishing game %s v%s failed again: %s", game_id, env.version, error_text(exc)
            )
        elif isinstance(exc, UNAVAILABLE):
            log.warning(
                "publishing game %s v%s failed, retrying with backoff (%d games pending): %s",
                game_id,
                env.version,
                len(self._pending),
                error_text(exc),
            )
        else:  # a bug, not an outage: the traceback helps, and the queue still carries on
            log.exception("publishing game %s v%s failed; retrying", game_id, env.version)

    async def aclose(self, *, flush_timeout: float = 2.0) -> None:
        """Give queued envelopes up to `flush_timeout` seconds to go out, then disconnect."""
        if self._pending:
            await self.flush(flush_timeout)
        if self._pending:
            log.warning("closing with %d games unpublished", len(self._pending))
        if self._worker is not None:
            self._worker.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._worker
            self._worker = None
        with contextlib.suppress(*UNAVAILABLE):
            await self._client.aclose()


def publish_sync(broker_url: str, envelope: EnvelopeLike) -> bool:
    """Publish one envelope from synchronous code (the CLI); True if it was newer."""

    async def once() -> bool:
        async with Publisher(broker_url) as publisher:
            return await publisher.publish(envelope)

    return asyncio.run(once())
