"""The operator's metrics: what the shipped alert rules ask of it is there, served over HTTP."""

from __future__ import annotations

import datetime as dt
import re
import socket
from pathlib import Path

import httpx
import yaml
from prometheus_client.parser import text_string_to_metric_families

from gamesync import __version__
from gamesync_operator.metrics import RECONCILIATION_RESULTS, OperatorMetrics

ALERTS = (
    Path(__file__).resolve().parents[2] / "charts" / "gamesync-operator" / "files" / "alerts.yaml"
)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_alert_rules_only_use_operator_metrics_that_exist() -> None:
    metrics = OperatorMetrics()
    due = dt.datetime(2026, 12, 1, tzinfo=dt.UTC)
    metrics.rotation("games", "arena", due)
    metrics.observed("games", "arena", connections=12, desired=2, ready=2)
    metrics.passes.labels("ok").inc()
    port = _free_port()
    metrics.serve("127.0.0.1", port)
    text = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=5).text
    samples = {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }
    labels = (("name", "arena"), ("namespace", "games"))
    assert samples[("gamesync_operator_key_rotation_due_timestamp_seconds", labels)] == (
        due.timestamp()
    )
    assert samples[("gamesync_operator_connections", labels)] == 12
    rules = yaml.safe_load(ALERTS.read_text())
    used = {
        name
        for group in rules["groups"]
        for rule in group["rules"]
        for name in re.findall(r"\bgamesync_operator_[a-z0-9_]+", rule["expr"])
    }
    assert used
    assert used <= {name for name, _ in samples}


def test_an_operator_with_no_cluster_still_exports_its_build_info_and_zero_counters() -> None:
    """GameSyncOperatorAbsent keys on build_info: it must not depend on having a cluster."""
    metrics = OperatorMetrics()
    assert (
        metrics.registry.get_sample_value("gamesync_operator_build_info", {"version": __version__})
        == 1
    )
    for result in RECONCILIATION_RESULTS:
        labels = {"result": result}
        assert (
            metrics.registry.get_sample_value("gamesync_operator_reconciliations_total", labels)
            == 0
        )
    rules = yaml.safe_load(ALERTS.read_text())
    assert any(
        "absent(gamesync_operator_build_info)" in r["expr"]
        for g in rules["groups"]
        for r in g["rules"]
    )


def test_a_deleted_cluster_leaves_no_series() -> None:
    metrics = OperatorMetrics()
    metrics.observed("games", "arena", connections=1, desired=1, ready=1)
    metrics.rotation("games", "arena", dt.datetime(2026, 12, 1, tzinfo=dt.UTC))
    metrics.forget("games", "arena")
    labels = {"namespace": "games", "name": "arena"}
    for name in (
        "gamesync_operator_connections",
        "gamesync_operator_key_rotation_due_timestamp_seconds",
    ):
        assert metrics.registry.get_sample_value(name, labels) is None
