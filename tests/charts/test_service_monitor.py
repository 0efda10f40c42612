"""The operator's ServiceMonitor selects the pod and port that serve /metrics, with the labels the
dashboard and alert rules filter on."""

from __future__ import annotations

import re
from typing import Any

import yaml
from chart_rendering import CHART, NAMESPACE, of_kind, only, render

FULLNAME = "gs-gamesync-operator"
ON = {"serviceMonitor": {"enabled": True, "labels": {"release": "kube-prometheus-stack"}}}


def _matches(selector: dict[str, str], labels: dict[str, str]) -> bool:
    return all(labels.get(key) == value for key, value in selector.items())


def _metrics_port(container: dict[str, Any]) -> dict[str, Any]:
    """The container port the operator serves /metrics on, read from its `--metrics` flag."""
    args = container["args"]
    listen = args[args.index("--metrics") + 1]
    port = int(listen.rsplit(":", 1)[1])
    return next(p for p in container["ports"] if p["containerPort"] == port)


def test_service_monitor_is_off_by_default() -> None:
    objects = render()
    assert of_kind(objects, "ServiceMonitor") == []
    assert of_kind(objects, "Service") == []


def test_service_monitor_selects_the_operator_pods_metrics_port_by_name_and_label() -> None:
    objects = render(ON)
    monitor = only(objects, "ServiceMonitor", FULLNAME)
    assert monitor["apiVersion"] == "monitoring.coreos.com/v1"
    assert monitor["metadata"]["labels"]["release"] == "kube-prometheus-stack"
    assert monitor["spec"]["namespaceSelector"] == {"matchNames": [NAMESPACE]}
    services = [
        s
        for s in of_kind(objects, "Service")
        if _matches(monitor["spec"]["selector"]["matchLabels"], s["metadata"]["labels"])
    ]
    assert [s["metadata"]["name"] for s in services] == [f"{FULLNAME}-metrics"]
    service = services[0]
    [endpoint] = monitor["spec"]["endpoints"]
    [service_port] = [p for p in service["spec"]["ports"] if p["name"] == endpoint["port"]]
    assert endpoint["path"] == "/metrics"

    # The Service reaches the operator pod only (not the dev Redis pod, which shares the
    # selector labels), on the container port that `--metrics` listens on.
    with_redis = render({**ON, "devRedis": {"enabled": True}})
    pods = {
        d["metadata"]["name"]: d["spec"]["template"]
        for d in of_kind(with_redis, "Deployment")
        if _matches(service["spec"]["selector"], d["spec"]["template"]["metadata"]["labels"])
    }
    assert list(pods) == [FULLNAME]
    [container] = pods[FULLNAME]["spec"]["containers"]
    port = _metrics_port(container)
    assert service_port["targetPort"] == port["name"] == "metrics"
    assert service_port["port"] == port["containerPort"]


def test_service_monitor_attaches_namespace_pod_and_the_job_the_rules_use() -> None:
    [endpoint] = only(render(ON), "ServiceMonitor")["spec"]["endpoints"]
    targets = {r["targetLabel"]: r for r in endpoint["relabelings"]}
    assert targets["namespace"]["sourceLabels"] == ["__meta_kubernetes_namespace"]
    assert targets["pod"]["sourceLabels"] == ["__meta_kubernetes_pod_name"]
    job = targets["job"]["replacement"]
    rules = yaml.safe_load((CHART / "files" / "alerts.yaml").read_text())
    selectors = {
        m
        for g in rules["groups"]
        for r in g["rules"]
        for m in re.findall(r'job="([^"]+)"', r["expr"])
    }
    assert job in selectors
    # The operator's own `namespace`/`name` labels name the GameSyncCluster: they must win.
    assert endpoint["honorLabels"] is True


def test_service_monitor_passes_interval_and_timeout_when_set() -> None:
    values = {"serviceMonitor": {"enabled": True, "interval": "15s", "scrapeTimeout": "5s"}}
    [endpoint] = only(render(values), "ServiceMonitor")["spec"]["endpoints"]
    assert (endpoint["interval"], endpoint["scrapeTimeout"]) == ("15s", "5s")
    [default] = only(render(ON), "ServiceMonitor")["spec"]["endpoints"]
    assert "interval" not in default
    assert "scrapeTimeout" not in default
