"""The gateway: wires settings, keys, broker, hub, registry and sweeper; starts, drains, reports."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import socket as _socket
import time
from typing import Any

from gamesync import __version__
from gamesync.abuse import AbusePenalty
from gamesync.authz import Authorizer
from gamesync.broker import Broker, create_broker
from gamesync.connection import ConnectionEnd, ConnectionState
from gamesync.envelope import Envelope
from gamesync.filewatch import FileWatcher
from gamesync.heartbeat import Limits
from gamesync.hub import Hub
from gamesync.keys import KeySet, generate_key
from gamesync.keystore import KeyStore
from gamesync.metric_labels import TRANSPORTS
from gamesync.metrics import GatewayMetrics, GatewaySample
from gamesync.protocol import Close, close_class, encode
from gamesync.ratelimit import Pacer
from gamesync.registry import Member, Registry
from gamesync.runtime_config import RuntimeConfig, RuntimeConfigStore
from gamesync.session import SessionServices
from gamesync.settings import AuthzPolicy, GatewaySettings
from gamesync.shedding import RECONNECT_SPREAD_MS, Shedder, drain_seconds, paced
from gamesync.supervisor import ErrorLog, Supervisor
from gamesync.sweeper import Sweeper
from gamesync.tracing import Tracing

__all__ = ["Gateway"]

log = logging.getLogger("gamesync.gateway")
conn_log = logging.getLogger("gamesync.connections")


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
        self.metrics = GatewayMetrics(
            self._sample,
            limits={
                "max_connections": settings.max_connections,
                "max_pending_connections": settings.max_pending_connections,
                "max_pending_per_address": settings.effective_max_pending_per_address,
                "admission_rate": settings.admission_rate,
                "admission_burst": settings.admission_burst,
                "abuse_burst": settings.effective_abuse_burst,
                "abuse_rate": settings.abuse_rate,
            },
        )
        #: refuses addresses whose connections keep being ended for abuse (None: off)
        self.penalty = (
            AbusePenalty(
                settings.abuse_rate,
                settings.effective_abuse_burst,
                time.monotonic,
                header=settings.client_address_header,
            )
            if settings.effective_abuse_burst > 0
            else None
        )
        self.metrics.watch_broker(broker.stats)
        self.tracing = Tracing(pod=self.pod)
        self.hub = Hub(
            broker,
            linger_seconds=settings.unsubscribe_linger_seconds,
            on_fanout=self.metrics.fanned_out,
            tracing=self.tracing,
            enforce_members=settings.effective_authz is AuthzPolicy.MEMBERS,
            on_members=lambda game_id: self.authorizer.members_changed(game_id),
        )
        self.authorizer = Authorizer(
            settings.effective_authz,
            latest=self.hub.latest,
            url=settings.authz_url,
            cache_seconds=settings.authz_cache_seconds,
            timeout_seconds=settings.authz_timeout_seconds,
        )
        self.runtime = RuntimeConfigStore()
        self.registry = Registry(
            max_connections=settings.max_connections,
            max_connections_per_user=settings.max_connections_per_user,
            max_pending=settings.max_pending_connections,
            max_pending_per_address=settings.effective_max_pending_per_address,
            pacer=Pacer(settings.admission_rate, settings.admission_burst, time.monotonic),
            on_end=self._connection_ended,
            on_leave=self._session_left,
        )
        self.sweeper = Sweeper(
            self.registry,
            Limits(
                ping_interval=settings.ping_interval,
                ping_timeout=settings.ping_timeout,
                idle_timeout=settings.idle_timeout,
                slow_client_seconds=settings.slow_client_seconds,
                token_leeway=settings.leeway_seconds,
            ),
            self.hub.stats,
            self.metrics,
        )
        #: moves connections to other pods when the operator asks (rebalancing)
        self.shedder = Shedder(self.registry, lambda: self.broker.ready)
        #: what every session receives (and nothing more of the gateway)
        self.services = SessionServices(
            settings=settings,
            registry=self.registry,
            hub=self.hub,
            keys=keys,
            authorizer=self.authorizer,
            metrics=self.metrics,
            tracing=self.tracing,
            penalty=self.penalty,
        )
        self.started = False
        self.supervisor = Supervisor()
        self._errors = ErrorLog(log)
        self._watchers: list[tuple[str, FileWatcher]] = []
        keys.on_kids = self._kids_changed

    @classmethod
    def create(cls, settings: GatewaySettings) -> Gateway:
        """Build a gateway from settings; raises ConfigError for anything unusable."""
        keys = KeyStore(
            audience=settings.audience,
            issuer=settings.issuer,
            leeway=settings.leeway_seconds,
            allow_hs256=settings.allow_hs256,
            max_lifetime=settings.max_token_lifetime,
            cache_size=settings.token_cache_size,
        )
        signer = None
        if settings.dev_mode:
            private, public = generate_key("ES256", kid="dev")
            keys.keyset = KeySet.from_jwks({"keys": [public]})
            signer = {"keys": [private], "active": private["kid"]}
        broker = create_broker(settings.broker, latest_ttl_seconds=settings.latest_ttl_seconds)
        return cls(settings, broker, keys, signer)

    # lifecycle ---------------------------------------------------------------------------

    async def start(self) -> None:
        """Load keys and runtime config, connect the broker, start the supervised tasks."""
        settings = self.settings
        if settings.keys is not None:
            watcher = self.keys.watch(settings.keys, settings.key_reload_seconds)
            self._watchers.append(("keys-watcher", watcher))
        self.runtime.subscribe(self._apply_log_level)
        self.runtime.subscribe(lambda config: self.tracing.apply(config.tracing))
        if settings.runtime_config is not None:
            watcher = FileWatcher(
                settings.runtime_config, self.runtime.load, settings.key_reload_seconds
            )
            watcher.check()
            self._watchers.append(("runtime-config-watcher", watcher))
        await self.broker.start(self.hub.offer, self.supervisor)
        for name, watcher in self._watchers:
            self.supervisor.spawn(name, watcher.run)
        self.supervisor.spawn("sweeper", self.sweeper.run)
        self.started = True

    async def stop(self) -> None:
        await self.shedder.stop()
        await self.supervisor.stop()
        await self.hub.close()
        await self.broker.stop()
        await self.authorizer.close()
        await asyncio.to_thread(self.tracing.shutdown)

    @property
    def tasks(self) -> list[asyncio.Task[None]]:
        """The supervised background tasks (sweeper, watchers)."""
        return self.supervisor.tasks

    def _kids_changed(self, removed: set[str], present: set[str]) -> None:
        """A key reload: the sessions of removed kids are closed by the sweeper, spread out."""
        now = asyncio.get_running_loop().time()
        self.sweeper.restore(present)
        self.sweeper.revoke(removed, now)

    @staticmethod
    def _apply_log_level(config: RuntimeConfig) -> None:
        logging.getLogger("gamesync").setLevel(config.log_level.upper())

    def not_healthy_reasons(self) -> list[str]:
        """Why `/healthz` fails (the kubelet then restarts the pod); empty when healthy."""
        return [f"background task {name} failed repeatedly" for name in self.supervisor.failed]

    @property
    def healthy(self) -> bool:
        return not self.supervisor.failed

    def not_ready_reasons(self) -> list[str]:
        """Why `/readyz` fails, in words (DESIGN §2); empty when ready."""
        reasons = self.not_healthy_reasons()
        if not self.started:
            reasons.append("not started")
        if self.registry.draining:
            reasons.append("draining")
        if self.shedder.shedding:
            reasons.append("shedding")  # newcomers go to the other pods meanwhile
        if not self.keys.keyset:
            reasons.append("no keys loaded")
        if not self.broker.ready:
            reasons.append("broker unavailable")
        return reasons

    @property
    def ready(self) -> bool:
        """Serving: started, keys loaded, broker usable, not draining (DESIGN §2 /readyz)."""
        return not self.not_ready_reasons()

    # publishing --------------------------------------------------------------------------

    async def publish(self, envelope: Envelope) -> bool:
        published = await self.broker.publish(envelope)
        self.metrics.published.labels("published" if published else "stale").inc()
        return published

    # drain -------------------------------------------------------------------------------

    async def drain(self) -> None:
        """Fail readiness, then close every socket with a jittered reconnect hint, paced."""
        if self.registry.draining:
            return
        await self.shedder.stop()  # the drain moves everyone
        members = self.registry.start_draining()
        seconds = drain_seconds(
            len(members), self.settings.drain_seconds, self.settings.evacuation_rate
        )
        batch, pause = paced(len(members), seconds)
        (log.warning if members else log.info)(  # nothing to drain is no warning
            "draining %d connections over %.1fs (batches of %d)", len(members), seconds, batch
        )
        random.shuffle(members)
        for start in range(0, len(members), max(batch, 1)):
            for member in members[start : start + batch]:
                try:
                    if member.conn.state is ConnectionState.DRAINING:  # not closed meanwhile
                        retry = random.randint(100, RECONNECT_SPREAD_MS)
                        member.send(encode("reconnect", reason="draining", retryAfterMs=retry))
                        member.close(Close.DRAINING, "draining")
                except Exception as exc:
                    # One session's failure must not leave the rest of the pod undrained.
                    self._errors.error("drain", "draining a session failed; dropping it", exc)
                    with contextlib.suppress(Exception):
                        member.conn.socket.abort()
            if start + batch < len(members):
                await asyncio.sleep(pause)

    # reporting ---------------------------------------------------------------------------

    def _session_left(self, member: Member) -> None:
        """A verified token goes to the token cache when its session ends, not before: only a
        client that left can come back with it (and a connected one costs no entry)."""
        identity, token = member.conn.identity, member.token
        if identity is not None and token is not None:
            self.keys.remember(token, identity)

    def _connection_ended(self, end: ConnectionEnd) -> None:
        """The close counter, the `connection_end` log line and the close trace event."""
        closing = end.closing
        reason = closing.reason if closing.by_server else "client"
        duration = round(end.duration, 3)
        self.metrics.closed(closing.code, reason, end.transport)
        conn_log.info(
            "connection_end",
            extra={
                "fields": {
                    "user": end.user_id,
                    "games": end.games,
                    "durationSeconds": duration,
                    "closeCode": closing.code,
                    "reason": closing.reason,
                    "closedBy": "server" if closing.by_server else "client",
                    "framesIn": end.frames_in,
                    "framesOut": end.frames_out,
                    "transport": end.transport,
                }
            },
        )
        self.tracing.event(
            "close",
            {
                "gamesync.close_code": closing.code,
                "gamesync.close_reason": reason,
                "gamesync.duration_s": duration,
            },
            error=close_class(closing.code).error,
        )

    def _sample(self) -> GatewaySample:
        stats = self.hub.stats
        return GatewaySample(
            connections_by_state={
                transport: self.registry.count_by_state(transport) for transport in TRANSPORTS
            },
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
            token_cache_hits=self.keys.tokens.hits,
            token_cache_misses=self.keys.tokens.misses,
            token_cache_entries=len(self.keys.tokens),
            runtime_reloads=self.runtime.reloads,
            runtime_failures=self.runtime.failures,
            broker_ready=self.broker.ready,
            draining=self.registry.draining,
            ready=self.ready,
            pending=self.registry.pending,
            pending_top_address=self.registry.pending_top_address,
            lingering=self.registry.lingering,
            task_restarts=dict(self.supervisor.restarts),
            healthy=self.healthy,
            sse_deliveries=stats.sse_deliveries,
            sse_bytes_out=stats.sse_bytes_out,
            delta_deliveries=stats.delta_deliveries,
            delta_bytes_out=stats.delta_bytes_out,
            abuse_offences=0 if self.penalty is None else self.penalty.offences,
            penalised_addresses=0 if self.penalty is None else self.penalty.penalised,
        )

    def stats(self) -> dict[str, Any]:
        """The `/v1/stats` document (docs/CONTRACTS-internal.md)."""
        return {
            "pod": self.pod,
            "version": __version__,
            "ready": self.ready,
            "draining": self.registry.draining,
            "connections": len(self.registry),
            "subscriptions": self.hub.subscription_count,
            "games": len(self.hub.topics),
            "deliveries": self.hub.stats.deliveries,
            "kids": self.keys.kids,
            "broker": self.broker.describe(),
            "shed": self.shedder.stats(),
            "runtimeConfig": {
                "hash": self.runtime.hash,
                "valid": self.runtime.error is None,
                "error": self.runtime.error,
            },
        }
