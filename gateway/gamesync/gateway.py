"""The gateway: wires settings, keys, broker, hub and sessions; sweeps, drains, reports."""

from __future__ import annotations

import asyncio
import logging
import math
import random
import socket as _socket
import time
from collections import Counter as _Counter
from typing import TYPE_CHECKING, Any

from gamesync import __version__
from gamesync.authz import Authorizer
from gamesync.broker import Broker, BrokerStats, create_broker
from gamesync.envelope import Envelope
from gamesync.filewatch import FileWatcher
from gamesync.heartbeat import Action, Limits, decide
from gamesync.hub import Hub
from gamesync.keys import KeySet, generate_key
from gamesync.keystore import KeyStore
from gamesync.metrics import GatewayMetrics, Snapshot
from gamesync.protocol import Close, encode
from gamesync.runtime_config import RuntimeConfig, RuntimeConfigStore
from gamesync.settings import GatewaySettings
from gamesync.tracing import Tracing

if TYPE_CHECKING:
    from gamesync.session import Session

__all__ = ["Gateway", "drain_plan"]

log = logging.getLogger("gamesync.gateway")
conn_log = logging.getLogger("gamesync.connections")

#: The sweeper visits every session once per tick, spread over this many slices.
SWEEP_SLICES = 20

#: Upper bound of the jittered `retryAfterMs` in a drain's reconnect hint.
RECONNECT_SPREAD_MS = 2000


def drain_plan(connections: int, window: float, *, tick: float = 0.05) -> tuple[int, float]:
    """(batch size, pause between batches) to close `connections` over 90 % of `window`."""
    if connections <= 0:
        return 0, 0.0
    steps = max(1, min(connections, int(window * 0.9 / tick)))
    return math.ceil(connections / steps), (window * 0.9) / steps


class Gateway:
    """One gateway process's state. Created by `Gateway.create`, run by `gamesync.server`."""

    def __init__(
        self,
        settings: GatewaySettings,
        broker: Broker,
        keys: KeyStore,
        signer: dict[str, Any] | None = None,
    ) -> None:
        self.settings = settings
        self.broker = broker
        self.keys = keys
        #: dev mode only: the generated private key, to mint tokens for the console
        self.signer = signer
        self.pod = settings.pod_name or _socket.gethostname()
        self.metrics = GatewayMetrics(self._snapshot)
        broker_stats = getattr(broker, "stats", None)
        if isinstance(broker_stats, BrokerStats):
            self.metrics.watch_broker(broker_stats)
        self.tracing = Tracing(pod=self.pod)
        self.hub = Hub(
            broker,
            linger_seconds=settings.unsubscribe_linger_seconds,
            on_fanout=self.metrics.fanned_out,
            tracing=self.tracing,
        )
        self.authorizer = Authorizer(
            settings.effective_authz,
            latest=self.hub.latest,
            url=settings.authz_url,
            cache_seconds=settings.authz_cache_seconds,
            timeout_seconds=settings.authz_timeout_seconds,
        )
        self.runtime = RuntimeConfigStore()
        self.sessions: set[Session] = set()
        self.users: _Counter[str] = _Counter()
        self._admitted: set[Session] = set()
        self._empty = asyncio.Event()
        self._empty.set()
        self.draining = False
        self.started = False
        self._watchers: list[FileWatcher] = []
        self._tasks: list[asyncio.Task[None]] = []
        self.limits = Limits(
            ping_interval=settings.ping_interval,
            ping_timeout=settings.ping_timeout,
            idle_timeout=settings.idle_timeout,
            slow_client_seconds=settings.slow_client_seconds,
        )

    @classmethod
    def create(cls, settings: GatewaySettings) -> Gateway:
        """Build a gateway from settings; raises ConfigError for anything unusable."""
        keys = KeyStore(
            audience=settings.audience, issuer=settings.issuer, leeway=settings.leeway_seconds
        )
        keys.allow_hs256 = settings.allow_hs256
        signer = None
        if settings.keys is None:
            private, public = generate_key("ES256", kid="dev")
            keys.keyset = KeySet.from_jwks({"keys": [public]})
            signer = {"keys": [private], "active": private["kid"]}
        broker = create_broker(settings.broker, latest_ttl_seconds=settings.latest_ttl_seconds)
        return cls(settings, broker, keys, signer)

    # lifecycle ---------------------------------------------------------------------------

    async def start(self) -> None:
        """Load keys and runtime config, connect the broker, start the sweeper."""
        settings = self.settings
        if settings.keys is not None:
            self._watchers.append(self.keys.watch(settings.keys, settings.key_reload_seconds))
        self.runtime.subscribe(self._apply_log_level)
        self.runtime.subscribe(lambda config: self.tracing.apply(config.tracing))
        if settings.runtime_config is not None:
            watcher = FileWatcher(
                settings.runtime_config, self.runtime.load, settings.key_reload_seconds
            )
            watcher.check()
            self._watchers.append(watcher)
        await self.broker.start(self.hub.offer)
        for watcher in self._watchers:
            watcher.start()
        self._spawn(self._sweep(), "sweeper")
        self.started = True

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks.clear()
        for watcher in self._watchers:
            await watcher.stop()
        await self.hub.close()
        await self.broker.stop()
        await self.authorizer.close()
        await asyncio.to_thread(self.tracing.shutdown)

    def _spawn(self, coro: Any, name: str) -> None:
        task = asyncio.get_running_loop().create_task(coro, name=name)
        task.add_done_callback(self._task_done)
        self._tasks.append(task)

    def _task_done(self, task: asyncio.Task[None]) -> None:
        if not task.cancelled() and task.exception() is not None:
            # Owned tasks never die silently: the pod turns unready and says why.
            log.error("background task %s died", task.get_name(), exc_info=task.exception())
            self.started = False

    @staticmethod
    def _apply_log_level(config: RuntimeConfig) -> None:
        logging.getLogger("gamesync").setLevel(config.log_level.upper())

    @property
    def ready(self) -> bool:
        """Serving: started, keys loaded, broker usable, not draining (DESIGN §2 /readyz)."""
        return self.started and not self.draining and bool(self.keys.keyset) and self.broker.ready

    # sessions ----------------------------------------------------------------------------

    def attach(self, session: Session) -> None:
        self.sessions.add(session)
        self._empty.clear()

    async def wait_empty(self, timeout: float) -> bool:
        """Wait until no session is left; False if some remain after `timeout`."""
        try:
            async with asyncio.timeout(timeout):
                await self._empty.wait()
        except TimeoutError:
            return False
        return True

    def detach(self, session: Session) -> None:
        self.sessions.discard(session)
        if not self.sessions:
            self._empty.set()
        conn = session.conn
        user = conn.user_id
        if user is not None and session in self._admitted:
            self._admitted.discard(session)
            self.users[user] -= 1
            if self.users[user] <= 0:
                del self.users[user]
        code = session.close_code if session.close_code is not None else Close.NORMAL
        self.metrics.closed(code, session.close_reason if session.closed_by_server else "client")
        duration = round(session.socket.loop.time() - conn.opened_at, 3)
        reason = session.close_reason if session.closed_by_server else "client"
        conn_log.info(
            "connection_end",
            extra={
                "fields": {
                    "user": user,
                    "games": session.final_games,
                    "durationSeconds": duration,
                    "closeCode": code,
                    "reason": session.close_reason,
                    "closedBy": "server" if session.closed_by_server else "client",
                    "framesIn": conn.frames_in,
                    "framesOut": conn.frames_out,
                }
            },
        )
        self.tracing.event(
            "close",
            {
                "gamesync.close_code": code,
                "gamesync.close_reason": reason,
                "gamesync.duration_s": duration,
            },
            error=code not in (1000, 1001, 1005, 1012),
        )

    def at_capacity(self) -> bool:
        return len(self.sessions) > self.settings.max_connections

    def admit_user(self, session: Session, user_id: str) -> bool:
        """Count the user's connection on this pod; False beyond the per-user limit."""
        if self.users[user_id] >= self.settings.max_connections_per_user:
            return False
        self.users[user_id] += 1
        self._admitted.add(session)
        return True

    # publishing --------------------------------------------------------------------------

    async def publish(self, envelope: Envelope) -> bool:
        published = await self.broker.publish(envelope)
        self.metrics.published.labels("published" if published else "stale").inc()
        return published

    # periodic checks ---------------------------------------------------------------------

    async def _sweep(self) -> None:
        tick = min(
            1.0,
            self.settings.ping_interval / 4,
            self.settings.idle_timeout / 4,
            self.settings.ping_timeout / 4,
        )
        loop = asyncio.get_running_loop()
        while True:
            # Each session is visited once per tick, in slices, so that a pass over tens of
            # thousands never holds the loop for more than a slice's worth (~1 ms).
            sessions = list(self.sessions)
            slices = max(1, min(SWEEP_SLICES, len(sessions)))
            size = math.ceil(len(sessions) / slices) if sessions else 0
            for start in range(0, slices):
                await asyncio.sleep(tick / slices)
                part = sessions[start * size : (start + 1) * size]
                if part:
                    self.sweep(loop.time(), time.time(), part)

    def sweep(self, now: float, wall_now: float, sessions: list[Session] | None = None) -> None:
        """Pings, timeouts, token expiry and slow clients for `sessions` (default: all)."""
        for session in list(self.sessions) if sessions is None else sessions:
            if session.close_code is not None:
                continue
            if session.expire_token_if_due(wall_now):
                continue
            conn = session.conn
            verdict = decide(
                now=now,
                state=conn.state,
                last_seen=session.socket.last_seen,
                ping_sent_at=conn.ping_sent_at,
                idle_since=conn.idle_since,
                unwritable_since=session.socket.unwritable_since,
                limits=self.limits,
            )
            if verdict.action is Action.PING:
                session.socket.send_ping()
                conn.ping_sent_at = now
            elif verdict.action is Action.CLOSE:
                slow = verdict.code == Close.TRY_AGAIN_LATER
                if slow:
                    self.hub.stats.slow_closes += 1
                session.close(verdict.code, verdict.reason, abort_after=1.0 if slow else None)

    # drain -------------------------------------------------------------------------------

    async def drain(self) -> None:
        """Fail readiness, then close every socket with a jittered reconnect hint, paced."""
        if self.draining:
            return
        self.draining = True
        window = self.settings.drain_seconds
        sessions = [s for s in self.sessions if s.close_code is None]
        batch, pause = drain_plan(len(sessions), window)
        (log.warning if sessions else log.info)(  # nothing to drain is no warning
            "draining %d connections over %.1fs (batches of %d)", len(sessions), window, batch
        )
        random.shuffle(sessions)
        for start in range(0, len(sessions), max(batch, 1)):
            for session in sessions[start : start + batch]:
                if session.close_code is None:
                    retry = random.randint(100, RECONNECT_SPREAD_MS)
                    session.send(encode("reconnect", reason="draining", retryAfterMs=retry))
                    session.close(Close.DRAINING, "draining")
            if start + batch < len(sessions):
                await asyncio.sleep(pause)

    # reporting ---------------------------------------------------------------------------

    def _snapshot(self) -> Snapshot:
        states: _Counter[str] = _Counter(s.conn.state.value for s in self.sessions)
        stats = self.hub.stats
        return Snapshot(
            connections_by_state=dict(states),
            subscriptions=self.hub.subscription_count,
            games=len(self.hub.topics),
            deliveries=stats.deliveries,
            bytes_out=stats.bytes_out,
            conflated=stats.conflated,
            stale=stats.stale,
            fanouts=stats.fanouts,
            slow_closes=stats.slow_closes,
            kids=self.keys.kids,
            key_reloads=self.keys.reloads,
            key_reload_failures=self.keys.reload_failures,
            runtime_reloads=self.runtime.reloads,
            runtime_failures=self.runtime.failures,
            broker_ready=self.broker.ready,
            draining=self.draining,
            ready=self.ready,
        )

    def stats(self) -> dict[str, Any]:
        """The `/v1/stats` document (docs/CONTRACTS-internal.md)."""
        return {
            "pod": self.pod,
            "version": __version__,
            "ready": self.ready,
            "draining": self.draining,
            "connections": len(self.sessions),
            "subscriptions": self.hub.subscription_count,
            "games": len(self.hub.topics),
            "deliveries": self.hub.stats.deliveries,
            "kids": self.keys.kids,
            "broker": self.broker.describe(),
            "runtimeConfig": {
                "hash": self.runtime.hash,
                "valid": self.runtime.error is None,
                "error": self.runtime.error,
            },
        }
