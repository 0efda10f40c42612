"""Prometheus metrics on the internal port. No per-game or per-user label (cardinality).

Every series the dashboard and alert rules read exists from start-up: gauges are exported with
0, and labelled counters start at 0 for every known label value (`gamesync.metric_labels`).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass

from prometheus_client import CollectorRegistry, Counter
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector

from gamesync.broker import BrokerStats
from gamesync.connection import ConnectionState
from gamesync.envelope import Envelope
from gamesync.histogram import LatencyHistogram
from gamesync.metric_labels import (
    AUTH_FAILURE_REASONS,
    BACKGROUND_TASKS,
    CLIENT,
    CLIENT_CLOSE_CODES,
    HANDSHAKE_REFUSALS,
    HTTP_PUBLISH_RESULTS,
    PUBLISH_RESULTS,
    SERVER_CLOSES,
    TOKEN_CACHE_RESULTS,
    TRANSPORTS,
    close_code_label,
)

__all__ = ["GatewayMetrics", "GatewaySample"]

LATENCY_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)


@dataclass(frozen=True, slots=True)
class GatewaySample:
    """Gateway state read at scrape time (cheap: no hot-path metric updates)."""

    #: transport -> state -> connections
    connections_by_state: dict[str, dict[str, int]]
    subscriptions: int
    games: int
    deliveries: int
    bytes_out: int
    conflated: int
    stale: int
    fanouts: int
    slow_closes: int
    kids: list[str]
    key_reloads: int
    key_reload_failures: int
    runtime_reloads: int
    runtime_failures: int
    broker_ready: bool
    draining: bool
    ready: bool
    pending: int = 0
    pending_top_address: int = 0
    lingering: int = 0
    task_restarts: dict[str, int] | None = None
    healthy: bool = True
    #: the part of `deliveries` and `bytes_out` written to SSE streams
    sse_deliveries: int = 0
    sse_bytes_out: int = 0
    #: the part of `deliveries` and `bytes_out` written as protocol-2 deltas
    delta_deliveries: int = 0
    delta_bytes_out: int = 0
    #: verified-token cache (gamesync.tokencache): lookups answered from it / verified afresh
    token_cache_hits: int = 0
    token_cache_misses: int = 0
    token_cache_entries: int = 0
    #: the abuse penalty (gamesync.abuse): offences counted, addresses refused now (the
    #: refusals are `gamesync_handshakes_refused_total{reason="penalised"}`)
    abuse_offences: int = 0
    penalised_addresses: int = 0


class _StateCollector(Collector):
    def __init__(self, read: Callable[[], GatewaySample]) -> None:
        self._read = read

    def collect(self) -> Iterator[Metric]:
        s = self._read()
        conns = GaugeMetricFamily(
            "gamesync_connections",
            "Client connections (websockets and SSE streams)",
            labels=["state", "transport"],
        )
        for transport in TRANSPORTS:
            by_state = s.connections_by_state.get(transport, {})
            for state in ConnectionState:  # every state, 0 included: "no data" is not "none"
                conns.add_metric([state.value, transport], by_state.get(state.value, 0))
        yield conns
        yield GaugeMetricFamily(
            "gamesync_subscriptions", "Connection-game subscriptions", value=s.subscriptions
        )
        yield GaugeMetricFamily("gamesync_games", "Games with local subscribers", value=s.games)
        deliveries = CounterMetricFamily(
            "gamesync_deliveries", "Snapshot frames written to clients", labels=["transport"]
        )
        deliveries.add_metric(["websocket"], s.deliveries - s.sse_deliveries)
        deliveries.add_metric(["sse"], s.sse_deliveries)
        yield deliveries
        bytes_out = CounterMetricFamily(
            "gamesync_bytes_out", "Snapshot bytes written to clients", labels=["transport"]
        )
        bytes_out.add_metric(["websocket"], s.bytes_out - s.sse_bytes_out)
        bytes_out.add_metric(["sse"], s.sse_bytes_out)
        yield bytes_out
        yield CounterMetricFamily(
            "gamesync_delta_deliveries",
            "Deliveries written as deltas (protocol 2; part of gamesync_deliveries)",
            value=s.delta_deliveries,
        )
        yield CounterMetricFamily(
            "gamesync_delta_bytes_out",
            "Bytes written as deltas (protocol 2; part of gamesync_bytes_out)",
            value=s.delta_bytes_out,
        )
        yield CounterMetricFamily(
            "gamesync_conflated_snapshots",
            "Pending snapshots replaced by a newer one",
            value=s.conflated,
        )
        yield CounterMetricFamily(
            "gamesync_stale_envelopes", "Envelopes dropped as not newer", value=s.stale
        )
        yield CounterMetricFamily("gamesync_fanouts", "Envelopes fanned out", value=s.fanouts)
        yield CounterMetricFamily(
            "gamesync_slow_closes", "Clients closed for not reading", value=s.slow_closes
        )
        kids = GaugeMetricFamily("gamesync_keys_loaded", "Verification keys loaded", labels=["kid"])
        for kid in s.kids:
            kids.add_metric([kid], 1)
        yield kids
        yield GaugeMetricFamily(
            "gamesync_key_count", "Verification keys loaded (0 too)", value=len(s.kids)
        )
        yield CounterMetricFamily(
            "gamesync_key_reloads", "Key file reloads applied", value=s.key_reloads
        )
        yield CounterMetricFamily(
            "gamesync_key_reload_failures",
            "Key files refused (last good set kept)",
            value=s.key_reload_failures,
        )
        yield CounterMetricFamily(
            "gamesync_runtime_config_reloads",
            "Runtime config files applied",
            value=s.runtime_reloads,
        )
        yield CounterMetricFamily(
            "gamesync_runtime_config_failures",
            "Runtime config files refused",
            value=s.runtime_failures,
        )
        lookups = CounterMetricFamily(
            "gamesync_token_cache_lookups",
            "Token verifications, by result: answered from the verified-token cache or not",
            labels=["result"],
        )
        lookups.add_metric([TOKEN_CACHE_RESULTS[0]], s.token_cache_hits)
        lookups.add_metric([TOKEN_CACHE_RESULTS[1]], s.token_cache_misses)
        yield lookups
        yield GaugeMetricFamily(
            "gamesync_token_cache_entries",
            "Verified tokens of ended connections remembered (bounded by --token-cache-size)",
            value=s.token_cache_entries,
        )
        yield GaugeMetricFamily(
            "gamesync_broker_ready", "1 when the broker is usable", value=int(s.broker_ready)
        )
        yield GaugeMetricFamily(
            "gamesync_draining", "1 while the pod drains", value=int(s.draining)
        )
        yield GaugeMetricFamily("gamesync_ready", "1 when /readyz answers 200", value=int(s.ready))
        yield GaugeMetricFamily(
            "gamesync_healthy", "1 when /healthz answers 200", value=int(s.healthy)
        )
        yield GaugeMetricFamily(
            "gamesync_pending_connections",
            "Connections not yet authenticated (capped per pod)",
            value=s.pending,
        )
        yield GaugeMetricFamily(
            "gamesync_pending_connections_top_address",
            "The most unauthenticated connections from any one client address (capped)",
            value=s.pending_top_address,
        )
        yield CounterMetricFamily(
            "gamesync_abuse_offences",
            "Connections ended for abuse (over a budget or the protocol, a refused token)",
            value=s.abuse_offences,
        )
        yield GaugeMetricFamily(
            "gamesync_abuse_penalised_addresses",
            "Client addresses refused for abuse at this moment",
            value=s.penalised_addresses,
        )
        yield GaugeMetricFamily(
            "gamesync_lingering_sockets",
            "Sockets whose session ended, still closing (they count toward the pod's cap)",
            value=s.lingering,
        )
        restarts = CounterMetricFamily(
            "gamesync_task_restarts",
            "Background tasks restarted after a failure",
            labels=["task"],
        )
        counts = s.task_restarts or {}
        for task in sorted({*BACKGROUND_TASKS, *counts}):
            restarts.add_metric([task], counts.get(task, 0))
        yield restarts


class _BrokerCollector(Collector):
    """The broker's counters (`BrokerStats`), read at scrape time."""

    def __init__(self, stats: BrokerStats) -> None:
        self._stats = stats

    def collect(self) -> Iterator[Metric]:
        s = self._stats
        yield GaugeMetricFamily(
            "gamesync_broker_subscriptions",
            "Games this pod is subscribed to in the broker (one channel each)",
            value=s.subscriptions,
        )
        for name, help_text, value in (
            ("reconnects", "Pub/sub connections re-established after a loss", s.reconnects),
            ("probe_failures", "Probes not echoed in time (deaf or unreachable)", s.probe_failures),
            ("stale_publishes", "Publishes refused by the script as not newer", s.stale_publishes),
            ("publishes", "Publishes through this pod that went out", s.publishes),
            ("received", "Envelopes received from the broker", s.received),
            ("malformed", "Channel messages that were not valid envelopes", s.malformed),
            ("resyncs", "Latest keys re-read after (re)subscribing", s.resyncs),
            ("reads", "Socket reads of the pub/sub connections (one callback each)", s.reads),
            (
                "receive_seconds",
                "Time in the pub/sub read callback (parsing, routing, envelopes) less the "
                "fan-outs' writes; a synchronous callback on the one-thread loop: about its CPU",
                s.receive_seconds,
            ),
        ):
            yield CounterMetricFamily(f"gamesync_broker_{name}", help_text, value=value)
        yield HistogramMetricFamily(
            "gamesync_broker_pubsub_lag_seconds",
            "From the envelope's publishedAt to its arrival from the broker on this pod",
            buckets=s.lag.cumulative(),
            sum_value=s.lag.sum,
        )


class _LatencyCollector(Collector):
    def __init__(self, histogram: LatencyHistogram) -> None:
        self._histogram = histogram

    def collect(self) -> Iterator[Metric]:
        yield HistogramMetricFamily(
            "gamesync_publish_to_send_seconds",
            "From the envelope's publishedAt to its frames being written on this pod",
            buckets=self._histogram.cumulative(),
            sum_value=self._histogram.sum,
        )


class _LimitsCollector(Collector):
    """The configured caps, so that a dashboard shows each use next to its limit."""

    def __init__(self, limits: dict[str, float]) -> None:
        self._limits = limits

    def collect(self) -> Iterator[Metric]:
        family = GaugeMetricFamily(
            "gamesync_limit", "Configured admission limits of this pod", labels=["limit"]
        )
        for name, value in sorted(self._limits.items()):
            family.add_metric([name], value)
        yield family


class GatewayMetrics:
    """The gateway's metrics, in a registry of its own (several gateways may share a process)."""

    def __init__(
        self, read: Callable[[], GatewaySample], limits: dict[str, float] | None = None
    ) -> None:
        self.registry = CollectorRegistry()
        self.registry.register(_StateCollector(read))
        if limits is not None:
            self.registry.register(_LimitsCollector(limits))
        self._closes = Counter(
            "gamesync_closes",
            "Connections closed, by code (a client's 3xxx/4xxx bucketed), reason and transport",
            ["code", "reason", "transport"],
            registry=self.registry,
        )
        self._auth_failures = Counter(
            "gamesync_auth_failures",
            "Refused tokens, by reason",
            ["reason"],
            registry=self.registry,
        )
        self._refused = Counter(
            "gamesync_handshakes_refused",
            "Upgrades and event streams refused before a session started",
            ["reason", "transport"],
            registry=self.registry,
        )
        self._forbidden = Counter(
            "gamesync_subscriptions_forbidden",
            "Subscriptions the policy refused",
            registry=self.registry,
        )
        self.latency = LatencyHistogram(LATENCY_BUCKETS)
        self.registry.register(_LatencyCollector(self.latency))
        self.published = Counter(
            "gamesync_published",
            "Envelopes published through this pod (HTTP endpoint and --demo)",
            ["result"],
            registry=self.registry,
        )
        self._http_publishes = Counter(
            "gamesync_http_publishes",
            "Requests to the HTTP publish endpoint, by result",
            ["result"],
            registry=self.registry,
        )
        self._start_at_zero()

    def _start_at_zero(self) -> None:
        """Create every known label combination, so that rate() sees each first event."""
        for transport in TRANSPORTS:
            for code, reason in SERVER_CLOSES:
                self._closes.labels(str(int(code)), reason, transport)
            for label in CLIENT_CLOSE_CODES:
                self._closes.labels(label, CLIENT, transport)
            for reason in HANDSHAKE_REFUSALS:
                self._refused.labels(reason, transport)
        for reason in AUTH_FAILURE_REASONS:
            self._auth_failures.labels(reason)
        for result in PUBLISH_RESULTS:
            self.published.labels(result)
        for result in HTTP_PUBLISH_RESULTS:
            self._http_publishes.labels(result)

    def watch_broker(self, stats: BrokerStats) -> None:
        """Export the broker's counters (`Broker.stats`) as `gamesync_broker_*`."""
        self.registry.register(_BrokerCollector(stats))

    def closed(self, code: int, reason: str, transport: str = "websocket") -> None:
        """Count a close; `reason` is `client` for a close the client started."""
        self._closes.labels(close_code_label(code, reason), reason, transport).inc()

    def auth_failed(self, reason: str) -> None:
        self._auth_failures.labels(reason).inc()

    def handshake_refused(self, reason: str, transport: str) -> None:
        self._refused.labels(reason, transport).inc()

    def forbidden(self) -> None:
        self._forbidden.inc()

    def http_published(self, result: str) -> None:
        """Count a request to the publish endpoint (`HTTP_PUBLISH_RESULTS`)."""
        self._http_publishes.labels(result).inc()

    def fanned_out(self, envelope: Envelope, recipients: int, size: int) -> None:
        """Observe publish→send latency once per fan-out (never per delivery)."""
        if envelope.published_at is not None and recipients:
            self.latency.observe(time.time() - envelope.published_at)
