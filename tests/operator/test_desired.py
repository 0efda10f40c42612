"""Desired state: every option rendered, every core object validated against real schemas."""

from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path
from typing import Any

import jsonschema
import kubernetes_validate
import pytest
from gsc_builders import make_spec

from gamesync_operator import desired
from gamesync_operator.network import OperatorPeer
from gamesync_operator.spec import ClusterSpec

OWNER = desired.Owner("arena", "games", "uid-1234")
KUBE_VERSIONS = ["1.30.0", "1.37.0"]

# Every option that changes what is rendered, one scenario each.
SCENARIOS: dict[str, dict[str, Any]] = {
    "defaults": {},
    "ingress-tls": {
        "exposure": {
            "mode": "Ingress",
            "host": "play.example.com",
            "tlsSecretName": "play-tls",
            "ingress": {"className": "nginx", "annotations": {"x/y": "z"}},
        }
    },
    "no-exposure": {"exposure": {"mode": "None"}},
    "route-host": {
        "exposure": {
            "host": "play.example.com",
            "httpRoute": {"parentRefs": [{"name": "gw", "sectionName": "https"}]},
        }
    },
    "hpa": {"autoscaling": {"mode": "HPA", "minReplicas": 3, "maxReplicas": 30}},
    "keda": {
        "autoscaling": {
            "mode": "KEDA",
            "keda": {"serverAddress": "http://prometheus.monitoring:9090"},
        }
    },
    "manual": {"autoscaling": {"mode": "None"}, "gateway": {"replicas": 4}},
    "tracing": {
        "tracing": {
            "enabled": True,
            "endpoint": "http://otel-collector:4318",
            "sampler": "always_on",
            "resourceAttributes": {"deployment.environment": "prod"},
        }
    },
    "auth-and-secrets": {
        "auth": {
            "policy": "backend",
            "backendUrl": "http://api/games/{gameId}",
            "audience": "gamesync",
            "issuer": "https://api.example.com",
            "allowedOrigins": ["https://play.example.com", "https://beta.example.com"],
        },
        "gateway": {
            "publishTokenSecretRef": {"name": "publish", "key": "token"},
            "clientAddressHeader": "X-Forwarded-For",
            "serviceAccountName": "gamesync",
            "podAnnotations": {"team": "games"},
            "resources": {"requests": {"cpu": "250m"}, "limits": {"cpu": 1, "memory": "1Gi"}},
        },
    },
    "cluster-redis": {"redis": {"mode": "Cluster", "urlSecretRef": {"name": "rc", "key": "u"}}},
    "network-policy": {
        "networkPolicy": {
            "publicFrom": [
                {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "edge"}}},
                {"ipBlock": {"cidr": "10.0.0.0/8", "except": ["10.1.0.0/16"]}},
            ],
            "monitoringNamespace": "monitoring",
            "backendSelector": {
                "matchExpressions": [{"key": "app", "operator": "In", "values": ["backend"]}]
            },
        }
    },
    "no-network-policy": {"networkPolicy": {"enabled": False}},
    "sharded": {"gateway": {"shards": 3}, "exposure": {"path": "/"}},
    "sharded-ingress-hpa": {
        "gateway": {"shards": 2},
        "exposure": {"mode": "Ingress", "host": "play.example.com"},
        "autoscaling": {"mode": "HPA", "minReplicas": 2, "maxReplicas": 8},
    },
    "pod-monitor": {
        "monitoring": {
            "podMonitor": {"enabled": True, "interval": "15s", "labels": {"release": "kps"}}
        }
    },
}
#: A trimmed copy of the Prometheus Operator's PodMonitor schema (source in its $comment).
PODMONITOR_SCHEMA = json.loads(
    (Path(__file__).parent / "schemas" / "podmonitor.monitoring.coreos.com.v1.json").read_text()
)


def _spec(name: str) -> ClusterSpec:
    return make_spec(**SCENARIOS[name])


def _by_kind(objs: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Children by kind; the two Services as Service and Service/internal."""
    out: dict[str, dict[str, Any]] = {}
    for o in objs:
        key = o["kind"] + ("/internal" if o["metadata"]["name"].endswith("-internal") else "")
        assert key not in out, key
        out[key] = o
    return out


def _env(deployment: dict[str, Any]) -> dict[str, Any]:
    container = deployment["spec"]["template"]["spec"]["containers"][0]
    return {e["name"]: e.get("value", e.get("valueFrom")) for e in container["env"]}


@pytest.mark.parametrize("scenario", sorted(SCENARIOS))
@pytest.mark.parametrize("kube_version", KUBE_VERSIONS)
def test_every_core_child_passes_strict_kubernetes_schema(scenario: str, kube_version: str) -> None:
    objs = desired.children(_spec(scenario), OWNER, replicas=3)
    checked = 0
    for obj in objs:
        if obj["apiVersion"] in (
            "gateway.networking.k8s.io/v1",
            "keda.sh/v1alpha1",
            "monitoring.coreos.com/v1",
        ):
            continue  # custom resources: no bundled schema; checked in their own tests
        kubernetes_validate.validate(obj, kube_version, strict=True)
        checked += 1
    assert checked >= 4


def test_strict_validation_catches_a_typo_so_the_check_above_has_teeth() -> None:
    obj = desired.pdb(_spec("defaults"))
    obj["spec"]["selectr"] = obj["spec"].pop("selector")
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(obj, "1.30.0", strict=True)


@pytest.mark.parametrize("scenario", sorted(SCENARIOS))
def test_every_child_is_owned_labelled_and_namespaced(scenario: str) -> None:
    for obj in desired.children(_spec(scenario), OWNER, replicas=2):
        meta = obj["metadata"]
        assert meta["namespace"] == "games"
        assert meta["labels"]["app.kubernetes.io/instance"] == "arena"
        assert meta["labels"]["app.kubernetes.io/managed-by"] == "gamesync-operator"
        (ref,) = meta["ownerReferences"]
        assert ref["uid"] == "uid-1234"
        assert ref["kind"] == "GameSyncCluster"
        assert ref["apiVersion"] == "gamesync.nommie.dev/v1alpha1"
        assert ref["controller"] is True
        assert ref["blockOwnerDeletion"] is True


def test_default_children_are_deployment_services_pdb_configmap_route_and_policy() -> None:
    kinds = _by_kind(desired.children(_spec("defaults"), OWNER, replicas=2))
    assert set(kinds) == {
        "ConfigMap",
        "Deployment",
        "Service",
        "Service/internal",
        "PodDisruptionBudget",
        "HTTPRoute",
        "NetworkPolicy",
    }


@pytest.mark.parametrize(
    ("scenario", "extra"),
    [
        ("ingress-tls", "Ingress"),
        ("no-exposure", None),
        ("hpa", "HorizontalPodAutoscaler"),
        ("keda", "ScaledObject"),
    ],
)
def test_exposure_and_autoscaler_children_follow_their_modes(
    scenario: str, extra: str | None
) -> None:
    kinds = set(_by_kind(desired.children(_spec(scenario), OWNER, replicas=None)))
    optional = {"Ingress", "HTTPRoute", "HorizontalPodAutoscaler", "ScaledObject"}
    expected = {extra} if extra else set()
    if SCENARIOS[scenario].get("exposure") is None:
        expected.add("HTTPRoute")  # the default exposure stays on
    assert kinds & optional == expected


def test_secrets_and_runtime_config_are_directory_mounts_never_subpath() -> None:
    dep = desired.deployment(_spec("defaults"), 2)
    pod = dep["spec"]["template"]["spec"]
    mounts = {m["name"]: m for m in pod["containers"][0]["volumeMounts"]}
    assert mounts["keys"]["mountPath"] == "/etc/gamesync/keys"
    assert mounts["runtime"]["mountPath"] == "/etc/gamesync/runtime"
    assert all("subPath" not in m for m in mounts.values())
    volumes = {v["name"]: v for v in pod["volumes"]}
    assert volumes["keys"]["secret"]["secretName"] == "arena-jwks"
    assert volumes["runtime"]["configMap"]["name"] == "arena-runtime"
    env = _env(dep)
    assert env["GAMESYNC_KEYS"] == "/etc/gamesync/keys/jwks.json"
    assert env["GAMESYNC_RUNTIME_CONFIG"] == "/etc/gamesync/runtime/runtime.json"


def test_gateways_never_see_the_signer_secret() -> None:
    text = json.dumps(desired.children(_spec("defaults"), OWNER, replicas=2))
    assert "arena-signer" not in text


def test_drain_timings_fit_in_the_grace_period() -> None:
    spec = make_spec(
        gateway={"preStopSeconds": 7, "drainSeconds": 40, "terminationGracePeriodSeconds": 60}
    )
    dep = desired.deployment(spec, 2)
    pod = dep["spec"]["template"]["spec"]
    container = pod["containers"][0]
    assert container["lifecycle"]["preStop"] == {"sleep": {"seconds": 7}}
    assert _env(dep)["GAMESYNC_DRAIN_SECONDS"] == "40"
    assert pod["terminationGracePeriodSeconds"] == 60 >= 7 + 40
    assert dep["spec"]["strategy"]["rollingUpdate"]["maxUnavailable"] == 0
    assert dep["spec"]["minReadySeconds"] == 5


def test_probes_use_healthz_and_readyz() -> None:
    container = desired.deployment(_spec("defaults"), 2)["spec"]["template"]["spec"]["containers"][
        0
    ]
    assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"


def test_replicas_are_left_out_when_an_autoscaler_owns_them() -> None:
    assert "replicas" not in desired.deployment(_spec("hpa"), None)["spec"]
    assert desired.deployment(_spec("manual"), 4)["spec"]["replicas"] == 4


def test_the_public_service_has_only_the_websocket_port() -> None:
    (port,) = desired.service(_spec("defaults"))["spec"]["ports"]
    assert port["appProtocol"] == "kubernetes.io/ws"
    assert (port["name"], port["port"], port["targetPort"]) == ("http", 8000, "http")


def test_the_internal_port_has_its_own_service() -> None:
    internal = desired.internal_service(_spec("defaults"))
    assert internal["metadata"]["name"] == "arena-internal"
    (port,) = internal["spec"]["ports"]
    assert (port["name"], port["port"], port["targetPort"]) == ("internal", 9000, "internal")
    assert internal["spec"]["selector"] == desired.selector_labels("arena")
    # Routes and Ingresses point at the public Service only.
    route = desired.http_route(_spec("defaults"))
    assert route["spec"]["rules"][0]["backendRefs"] == [{"name": "arena", "port": 8000}]


def test_both_listeners_are_configured_explicitly() -> None:
    env = _env(desired.deployment(_spec("defaults"), 2))
    assert env["GAMESYNC_HOST"] == "0.0.0.0"
    assert env["GAMESYNC_INTERNAL_HOST"] == "0.0.0.0"
    assert (env["GAMESYNC_PORT"], env["GAMESYNC_INTERNAL_PORT"]) == ("8000", "9000")


PEER = OperatorPeer("gamesync-system", {"app.kubernetes.io/name": "gamesync-operator"})


def _policy(**network: Any) -> dict[str, Any]:
    spec = make_spec(networkPolicy=network)
    (policy,) = [o for o in desired.children(spec, OWNER, 2, PEER) if o["kind"] == "NetworkPolicy"]
    return policy


def _rules(policy: dict[str, Any]) -> dict[int, dict[str, Any]]:
    return {rule["ports"][0]["port"]: rule for rule in policy["spec"]["ingress"]}


def test_network_policy_opens_the_internal_port_to_the_operator_monitoring_and_backend() -> None:
    policy = _policy(
        monitoringNamespace="monitoring",
        backendSelector={"matchLabels": {"app": "game-backend"}},
    )
    assert policy["spec"]["podSelector"] == {"matchLabels": desired.selector_labels("arena")}
    assert policy["spec"]["policyTypes"] == ["Ingress"]
    internal = _rules(policy)[9000]
    assert internal["from"] == [
        {
            "namespaceSelector": {
                "matchLabels": {"kubernetes.io/metadata.name": "gamesync-system"}
            },
            "podSelector": {"matchLabels": {"app.kubernetes.io/name": "gamesync-operator"}},
        },
        {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "monitoring"}}},
        {"podSelector": {"matchLabels": {"app": "game-backend"}}},
    ]
    assert "from" not in _rules(policy)[8000]  # the public port: any source by default
    for version in KUBE_VERSIONS:
        kubernetes_validate.validate(policy, version, strict=True)


def test_network_policy_limits_the_public_port_to_the_configured_ingress() -> None:
    ingress = {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "ingress"}}}
    assert _rules(_policy(publicFrom=[ingress]))[8000]["from"] == [ingress]


def test_without_any_internal_peer_the_internal_port_admits_nobody() -> None:
    spec = make_spec()
    (policy,) = [o for o in desired.children(spec, OWNER, 2, None) if o["kind"] == "NetworkPolicy"]
    assert set(_rules(policy)) == {8000}  # no rule for 9000 at all: nobody, not everybody


def test_the_network_policy_can_be_switched_off() -> None:
    spec = make_spec(networkPolicy={"enabled": False})
    assert "NetworkPolicy" not in _by_kind(desired.children(spec, OWNER, 2, PEER))


def test_http_route_disables_the_request_timeout_and_attaches_to_the_gateway() -> None:
    route = desired.http_route(_spec("route-host"))
    assert route["apiVersion"] == "gateway.networking.k8s.io/v1"
    (rule,) = route["spec"]["rules"]
    assert rule["timeouts"] == {"request": "0s"}
    assert rule["matches"] == [{"path": {"type": "PathPrefix", "value": "/ws"}}]
    assert rule["backendRefs"] == [{"name": "arena", "port": 8000}]
    assert route["spec"]["hostnames"] == ["play.example.com"]
    assert route["spec"]["parentRefs"] == [
        {
            "group": "gateway.networking.k8s.io",
            "kind": "Gateway",
            "name": "gw",
            "sectionName": "https",
        }
    ]


def test_ingress_has_websocket_safe_timeouts_and_tls() -> None:
    ing = desired.ingress(_spec("ingress-tls"))
    ann = ing["metadata"]["annotations"]
    assert ann["nginx.ingress.kubernetes.io/proxy-read-timeout"] == "3600"
    assert ann["nginx.ingress.kubernetes.io/proxy-send-timeout"] == "3600"
    assert ann["x/y"] == "z"
    assert ing["spec"]["ingressClassName"] == "nginx"
    assert ing["spec"]["tls"] == [{"hosts": ["play.example.com"], "secretName": "play-tls"}]


def test_hpa_scales_up_fast_and_down_one_pod_per_period() -> None:
    hpa = desired.hpa(_spec("hpa"))
    assert (hpa["spec"]["minReplicas"], hpa["spec"]["maxReplicas"]) == (3, 30)
    assert hpa["spec"]["metrics"][0]["pods"]["target"]["averageValue"] == "1000"
    down = hpa["spec"]["behavior"]["scaleDown"]
    assert down["stabilizationWindowSeconds"] == 300
    assert down["policies"] == [{"type": "Pods", "value": 1, "periodSeconds": 60}]
    assert hpa["spec"]["behavior"]["scaleUp"]["stabilizationWindowSeconds"] == 0


def test_keda_scaled_object_queries_prometheus_for_this_cluster() -> None:
    so = desired.scaled_object(_spec("keda"))
    (trigger,) = so["spec"]["triggers"]
    assert trigger["type"] == "prometheus"
    assert trigger["metadata"]["serverAddress"] == "http://prometheus.monitoring:9090"
    assert 'namespace="games"' in trigger["metadata"]["query"]
    assert trigger["metadata"]["threshold"] == "1000"
    assert so["spec"]["scaleTargetRef"]["name"] == "arena"
    assert so["spec"]["advanced"]["horizontalPodAutoscalerConfig"]["behavior"]["scaleDown"]


def test_runtime_config_carries_tracing_and_its_hash_is_of_the_file_bytes() -> None:
    spec = _spec("tracing")
    cm = desired.configmap(spec)
    document = json.loads(cm["data"]["runtime.json"])
    assert document["logLevel"] == "info"
    tracing = document["tracing"]
    assert tracing["enabled"] is True
    assert tracing["endpoint"] == "http://otel-collector:4318"
    assert tracing["protocol"] == "http/protobuf"
    assert tracing["sampler"] == "always_on"
    assert tracing["ratio"] == 0.05
    assert tracing["resourceAttributes"]["deployment.environment"] == "prod"
    digest = hashlib.sha256(cm["data"]["runtime.json"].encode()).hexdigest()
    assert desired.runtime_config_hash(spec) == f"sha256:{digest}"


def test_tracing_changes_only_touch_the_configmap_not_the_pod_template() -> None:
    # A pod template change would roll every gateway (a reconnect storm); tracing must not.
    off, on = _spec("defaults"), _spec("tracing")
    assert desired.deployment(off, 2) == desired.deployment(on, 2)
    assert desired.configmap(off) != desired.configmap(on)


def test_auth_settings_reach_the_gateway_environment() -> None:
    env = _env(desired.deployment(_spec("auth-and-secrets"), 2))
    assert env["GAMESYNC_AUTHZ"] == "backend"
    assert env["GAMESYNC_AUTHZ_URL"] == "http://api/games/{gameId}"
    assert env["GAMESYNC_AUDIENCE"] == "gamesync"
    assert env["GAMESYNC_ISSUER"] == "https://api.example.com"
    assert env["GAMESYNC_ALLOWED_ORIGINS"] == "https://play.example.com,https://beta.example.com"
    assert env["GAMESYNC_PUBLISH_TOKEN"] == {"secretKeyRef": {"name": "publish", "key": "token"}}
    assert env["GAMESYNC_BROKER"] == {"secretKeyRef": {"name": "redis-url", "key": "url"}}
    assert env["GAMESYNC_POD_NAME"] == {"fieldRef": {"fieldPath": "metadata.name"}}


def test_redis_url_comes_from_the_referenced_secret() -> None:
    env = _env(desired.deployment(_spec("cluster-redis"), 2))
    assert env["GAMESYNC_BROKER"] == {"secretKeyRef": {"name": "rc", "key": "u"}}


def test_pods_run_locked_down() -> None:
    pod = desired.deployment(_spec("defaults"), 2)["spec"]["template"]["spec"]
    assert pod["automountServiceAccountToken"] is False
    assert pod["securityContext"]["runAsNonRoot"] is True
    sc = pod["containers"][0]["securityContext"]
    assert sc["readOnlyRootFilesystem"] is True
    assert sc["allowPrivilegeEscalation"] is False
    assert sc["capabilities"] == {"drop": ["ALL"]}


def test_pdb_limits_evictions_and_selects_the_gateways() -> None:
    pdb = desired.pdb(_spec("defaults"))
    assert pdb["spec"]["maxUnavailable"] == 1
    assert pdb["spec"]["selector"]["matchLabels"] == desired.selector_labels("arena")
    assert desired.label_selector("arena") == (
        "app.kubernetes.io/instance=arena,app.kubernetes.io/name=gamesync-gateway"
    )


def _strict(schema: Any) -> Any:
    """`schema` with unknown fields refused in every object that lists its properties."""
    if isinstance(schema, dict):
        out = {k: _strict(v) for k, v in schema.items()}
        if "properties" in out and "additionalProperties" not in out:
            out["additionalProperties"] = False
        return out
    if isinstance(schema, list):
        return [_strict(v) for v in schema]
    return schema


def _validate_pod_monitor(obj: dict[str, Any]) -> None:
    jsonschema.validate(obj, _strict(PODMONITOR_SCHEMA))


def test_the_pod_monitor_passes_the_prometheus_operator_schema_strictly() -> None:
    objs = _by_kind(desired.children(_spec("pod-monitor"), OWNER, replicas=2))
    _validate_pod_monitor(objs["PodMonitor"])
    typo = json.loads(json.dumps(objs["PodMonitor"]))
    typo["spec"]["podMetricsEndpoints"][0]["intervall"] = "15s"
    with pytest.raises(jsonschema.ValidationError):
        _validate_pod_monitor(typo)  # the check has teeth
    assert "PodMonitor" not in _by_kind(desired.children(_spec("defaults"), OWNER, replicas=2))


def test_the_pod_monitor_selects_the_gateway_pods_metrics_port_with_the_rules_labels() -> None:
    objs = _by_kind(desired.children(_spec("pod-monitor"), OWNER, replicas=2))
    monitor, deployment = objs["PodMonitor"], objs["Deployment"]
    template = deployment["spec"]["template"]
    selector = monitor["spec"]["selector"]["matchLabels"]
    assert selector.items() <= template["metadata"]["labels"].items()
    assert monitor["spec"]["namespaceSelector"] == {"matchNames": ["games"]}
    [endpoint] = monitor["spec"]["podMetricsEndpoints"]
    [container] = template["spec"]["containers"]
    [port] = [p for p in container["ports"] if p["name"] == endpoint["port"]]
    assert port["containerPort"] == desired.INTERNAL_PORT  # /metrics lives on the internal port
    assert endpoint["path"] == "/metrics"
    assert endpoint["interval"] == "15s"
    # The job label comes from the pod label the alert rules' `job="gamesync-gateway"` expects.
    job = template["metadata"]["labels"][monitor["spec"]["jobLabel"]]
    rules = Path(__file__).resolve().parents[2] / "charts/gamesync-operator/files/alerts.yaml"
    assert f'job="{job}"' in rules.read_text()
    targets = {r["targetLabel"]: r["sourceLabels"] for r in endpoint["relabelings"]}
    assert targets == {
        "namespace": ["__meta_kubernetes_namespace"],
        "pod": ["__meta_kubernetes_pod_name"],
    }
    assert monitor["metadata"]["labels"]["release"] == "kps"  # what the Prometheus selects on
    # A user label cannot take over the operator's own labels.
    spec = make_spec(
        monitoring={"podMonitor": {"enabled": True, "labels": {"app.kubernetes.io/instance": "x"}}}
    )
    relabelled = desired.pod_monitor(spec)
    assert relabelled["metadata"]["labels"]["app.kubernetes.io/instance"] == "arena"


def test_the_gateway_gets_the_token_lifetime_and_evacuation_rate_of_the_spec() -> None:
    env = _env(
        desired.deployment(
            make_spec(gateway={"evacuationRate": 250}, signingKeys={"maxTokenLifetime": "2h30m"}),
            2,
        )
    )
    assert env["GAMESYNC_MAX_TOKEN_LIFETIME"] == "9000"
    assert env["GAMESYNC_EVACUATION_RATE"] == "250"
    defaults = _env(desired.deployment(_spec("defaults"), 2))
    assert (defaults["GAMESYNC_MAX_TOKEN_LIFETIME"], defaults["GAMESYNC_EVACUATION_RATE"]) == (
        "3600",
        "1000",
    )
    assert all(re.fullmatch(r"GAMESYNC_[A-Z_]+", name) for name in defaults)


def test_the_gateway_keys_its_per_address_limits_on_the_header_the_spec_names() -> None:
    """Behind the route every peer is the proxy: without the header the per-address limits and
    the abuse penalty stay off (DESIGN §2), with it they key on the client."""
    env = _env(desired.deployment(_spec("auth-and-secrets"), 2))
    assert env["GAMESYNC_CLIENT_ADDRESS_HEADER"] == "X-Forwarded-For"
    assert "GAMESYNC_CLIENT_ADDRESS_HEADER" not in _env(desired.deployment(_spec("defaults"), 2))


def test_the_gateway_accepts_every_variable_the_deployment_sets(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Known settings validate to the value set; unknown ones (a gateway older than the
    operator) are ignored by pydantic-settings, not refused: the pod still starts."""
    from gamesync.settings import load_settings

    env = {
        k: v
        for k, v in _env(desired.deployment(_spec("auth-and-secrets"), 2)).items()
        if isinstance(v, str)
    }
    env["GAMESYNC_SETTING_FROM_THE_FUTURE"] = "1"
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    settings = load_settings()  # no error: known ones valid, unknown ones ignored
    numbers = 0
    for name, value in env.items():
        field = name.removeprefix("GAMESYNC_").lower()
        current = getattr(settings, field, None)
        if isinstance(current, int | float) and not isinstance(current, bool):
            assert float(current) == float(value), name
            numbers += 1
    assert numbers >= 5  # ports, drain, ping, idle, evacuation rate (token lifetime once known)
