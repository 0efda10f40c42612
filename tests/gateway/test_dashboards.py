"""The shipped dashboard and alert rules only use metrics a running gateway exports."""

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


def _expressions() -> list[str]:
    dashboard = json.loads((FILES / "grafana-dashboard.json").read_text())
    exprs = [t["expr"] for p in dashboard["panels"] for t in p["targets"]]
    for variable in dashboard["templating"]["list"]:
        if variable.get("type") == "query":
            exprs.append(variable["query"])
    rules = yaml.safe_load((FILES / "alerts.yaml").read_text())
    exprs += [r["expr"] for g in rules["groups"] for r in g["rules"]]
    return exprs


async def test_every_metric_in_dashboards_and_alerts_is_exported(
    gateway: GatewayServer, keys: Keys
) -> None:
    async with await connect(gateway, "/ws/games/1", token=keys.token()) as ws:
        await recv_until(ws, lambda m: m["type"] == "subscribed")
        await publish(gateway, envelope(1, 1))
        await recv_until(ws, lambda m: m["type"] == "snapshot")
        async with httpx.AsyncClient(base_url=gateway.internal_url) as client:
            text = (await client.get("/metrics")).text
    exported = {
        sample.name for family in text_string_to_metric_families(text) for sample in family.samples
    } | {family.name for family in text_string_to_metric_families(text)}
    used = {name for expr in _expressions() for name in METRIC.findall(expr)}
    assert len(used) >= 15
    families = {re.sub(r"_(total|bucket|count|sum)$", "", n) for n in exported}
    missing = sorted(
        n
        for n in used
        if n not in exported
        and re.sub(r"_(total|bucket|count|sum)$", "", n) not in families
        and not n.startswith(ELSEWHERE)
    )
    assert missing == []


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
