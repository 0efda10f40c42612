"""Prometheus metrics of the operator: one series per GameSyncCluster, never per pod or user."""

from __future__ import annotations

import contextlib
import datetime as dt

from prometheus_client import CollectorRegistry, Counter, Gauge, start_http_server

from gamesync import __version__

__all__ = ["RECONCILIATION_RESULTS", "OperatorMetrics"]

#: `gamesync_operator_reconciliations_total{result}`, each exported as 0 from start-up.
RECONCILIATION_RESULTS = ("ok", "problems", "api_error")


class OperatorMetrics:
    """What alerts and dashboards need from the operator (charts/.../files/alerts.yaml)."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        # Always exported, with or without a GameSyncCluster: `absent()` on it tells "the
        # operator is not scraped" from "nothing to report".
        Gauge(
            "gamesync_operator_build_info",
            "Always 1; the operator's version in a label",
            ["version"],
            registry=self.registry,
        ).labels(__version__).set(1)
        labels = ["namespace", "name"]
        self.rotation_due = Gauge(
            "gamesync_operator_key_rotation_due_timestamp_seconds",
            "When the active signing key is due to be replaced (Unix time)",
            labels,
            registry=self.registry,
        )
        self.connections = Gauge(
            "gamesync_operator_connections",
            "Live connections summed over the cluster's ready gateways",
            labels,
            registry=self.registry,
        )
        self.desired = Gauge(
            "gamesync_operator_desired_replicas",
            "Gateway replicas wanted",
            labels,
            registry=self.registry,
        )
        self.ready = Gauge(
            "gamesync_operator_ready_replicas",
            "Gateway replicas ready",
            labels,
            registry=self.registry,
        )
        self.passes = Counter(
            "gamesync_operator_reconciliations",
            "Reconciliation passes, by result",
            ["result"],
            registry=self.registry,
        )
        for result in RECONCILIATION_RESULTS:
            self.passes.labels(result)

    def serve(self, host: str, port: int) -> None:
        """Serve /metrics from a background thread."""
        start_http_server(port, addr=host, registry=self.registry)

    def rotation(self, namespace: str, name: str, due: dt.datetime | None) -> None:
        if due is not None:
            self.rotation_due.labels(namespace, name).set(due.timestamp())

    def observed(
        self, namespace: str, name: str, *, connections: int | None, desired: int | None, ready: int
    ) -> None:
        if connections is not None:
            self.connections.labels(namespace, name).set(connections)
        if desired is not None:
            self.desired.labels(namespace, name).set(desired)
        self.ready.labels(namespace, name).set(ready)

    def forget(self, namespace: str, name: str) -> None:
        """Drop a deleted cluster's series."""
        for gauge in (self.rotation_due, self.connections, self.desired, self.ready):
            with contextlib.suppress(KeyError):
                gauge.remove(namespace, name)
