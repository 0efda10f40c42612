"""The shipped dashboard and alert rules only use metrics a running gateway exports, from the
moment it starts (tests/observability/ runs them in a real Prometheus)."""

from __future__ import annotations

import json
import re
from pathlib import Path

import httpx
import yaml
from prometheus_client.parser import text_string_to_metric_families
from wire import Keys, connect, envelope, publish, recv_until

from gamesync.server import GatewayServer

FILES = Path(__file__).resolve().parents[2] / "charts" / "gamesync-operator" / "files"
METRIC = re.compile(r"\bgamesync_[a-z0-9_]+")
# Exported by other processes: the operator and the Redis broker (checked in their own tests).
ELSEWHERE = (
    "gamesync_operator_",
    "gamesync_broker_lag",
    "gamesync_broker_reconnects",
    "gamesync_broker_probe",
)
#: Labels Prometheus attaches to a target (not exported by the gateway).
TARGET_LABELS = {"namespace", "pod", "job", "instance"}
MATCHER = re.compile(r"\b(gamesync_[a-z0-9_]+)\{([^}]*)\}")
EQUALS = re.compile(r'([a-z_]+)="([^"$]*)"')


def _expressions() -> list[str]:
    dashboard = json.loads((FILES / "grafana-dashboard.json").read_text())
    exprs = [t["expr"] for p in dashboard["panels"] for t in p["targets"]]
    for variable in dashboard["templating"]["list"]:
        if variable.get("type") == "query":
            exprs.append(variable["query"])
    rules = yaml.safe_load((FILES / "alerts.yaml").read_text())
    exprs += [r["expr"] for g in rules["groups"] for r in g["rules"]]
    return exprs


async def _scrape(gateway: GatewayServer) -> str:
    async with httpx.AsyncClient(base_url=gateway.internal_url) as client:
        return (await client.get("/metrics")).text


def _missing(text: str) -> list[str]:
    """Metric names the dashboard and rules use that `text` (one scrape) lacks."""
    # Samples only: a labelled counter with no child yet shows its HELP line but no series.
    exported = {
        sample.name for family in text_string_to_metric_families(text) for sample in family.samples
    }
    used = {name for expr in _expressions() for name in METRIC.findall(expr)}
    assert len(used) >= 15
    families = {re.sub(r"_(total|bucket|count|sum)$", "", n) for n in exported}
    return sorted(
        n
        for n in used
        if n not in exported
        and re.sub(r"_(total|bucket|count|sum)$", "", n) not in families
        and not n.startswith(ELSEWHERE)
    )


async def test_every_metric_in_dashboards_and_alerts_is_exported(
    gateway: GatewayServer, keys: Keys
) -> None:
    async with await connect(gateway, "/ws/games/1", token=keys.token()) as ws:
        await recv_until(ws, lambda m: m["type"] == "subscribed")
        await publish(gateway, envelope(1, 1))
        await recv_until(ws, lambda m: m["type"] == "snapshot")
        text = await _scrape(gateway)
    assert _missing(text) == []


async def test_every_metric_and_label_value_they_select_is_there_before_any_event(
    gateway: GatewayServer,
) -> None:
    """Day one, no client yet: every series a panel or rule reads exists (0 is data)."""
    text = await _scrape(gateway)
    assert _missing(text) == []
    samples = [s for f in text_string_to_metric_families(text) for s in f.samples]
    selected = [
        (name, label, value)
        for expr in _expressions()
        for name, matchers in MATCHER.findall(expr)
        for label, value in EQUALS.findall(matchers)
        if label not in TARGET_LABELS and not name.startswith(ELSEWHERE)
    ]
    assert ("gamesync_connections", "state", "open") in selected
    for name, label, value in selected:
        assert any(
            s.name in (name, f"{name}_total") and s.labels.get(label) == value for s in samples
        ), f"{name}{{{label}={value!r}}}"


def test_alert_rules_cover_the_issue_list() -> None:
    rules = yaml.safe_load((FILES / "alerts.yaml").read_text())
    names = {r["alert"] for g in rules["groups"] for r in g["rules"]}
    for wanted in (
        "GameSyncNoReadyGateways",
        "GameSyncBrokerDown",
        "GameSyncDeliveryLatencyHigh",
        "GameSyncSlowClosesRising",
        "GameSyncKeyAboutToExpireUnrotated",
    ):
        assert wanted in names
