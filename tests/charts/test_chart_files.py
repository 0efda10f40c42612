"""The dashboard and alert rules from files/ reach their objects intact."""

from __future__ import annotations

import json

import yaml
from chart_rendering import CHART, only, render, scenario_values


def test_dashboard_configmap_holds_the_dashboard_json() -> None:
    objects = render(scenario_values("05-observability"))
    configmap = only(objects, "ConfigMap")
    assert configmap["metadata"]["labels"]["grafana_dashboard"] == "1"
    assert configmap["metadata"]["annotations"] == {"grafana_folder": "GameSync"}
    shipped = json.loads((CHART / "files" / "grafana-dashboard.json").read_text())
    assert json.loads(configmap["data"]["gamesync.json"]) == shipped
    assert shipped["title"]


def test_prometheus_rule_carries_the_alert_groups() -> None:
    rule = only(render(scenario_values("05-observability")), "PrometheusRule")
    assert rule["apiVersion"] == "monitoring.coreos.com/v1"
    assert rule["metadata"]["labels"]["release"] == "kube-prometheus-stack"
    shipped = yaml.safe_load((CHART / "files" / "alerts.yaml").read_text())
    assert rule["spec"] == {"groups": shipped["groups"]}


def test_every_alert_rule_is_well_formed() -> None:
    """Each group has a name and rules; each rule alerts or records, with an expression."""
    groups = yaml.safe_load((CHART / "files" / "alerts.yaml").read_text())["groups"]
    assert groups
    for group in groups:
        assert group["name"]
        assert isinstance(group["rules"], list)
        for rule in group["rules"]:
            assert ("alert" in rule) != ("record" in rule), rule
            assert isinstance(rule["expr"], str), rule
            assert rule["expr"].strip(), rule
