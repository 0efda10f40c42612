"""The chart renders, lints and produces valid Kubernetes objects in every CI scenario."""

from __future__ import annotations

import copy
from typing import Any

import helm_python as helm
import kubernetes_validate
import pytest
from chart_rendering import (
    CHART,
    NAMESPACE,
    RELEASE,
    notes,
    of_kind,
    only,
    pod_specs,
    render,
    scenario_values,
)

from gamesync_operator import cli

KUBE_VERSIONS = ["1.30.0", "1.37.0"]
#: Kinds kubernetes-validate has no schema for; GameSyncCluster is checked against its CRD in
#: test_example_cluster.py, the monitoring kinds only by rendering.
CUSTOM_KINDS = {"GameSyncCluster", "PrometheusRule", "ScaledObject", "ServiceMonitor"}
FULLNAME = f"{RELEASE}-gamesync-operator"


def test_every_scenario_lints_without_warnings(scenario: str) -> None:
    """`helm lint --strict` finds nothing above info level (the only info: no icon)."""
    for kube_version in KUBE_VERSIONS:
        report = helm.lint(
            CHART, scenario_values(scenario), strict=True, kube_version=f"v{kube_version}"
        )
        assert report["errors"] == []
        assert [m for m in report["messages"] if m["severity"] >= 2] == []


@pytest.mark.parametrize("kube_version", KUBE_VERSIONS)
def test_every_rendered_object_is_valid_for_kubernetes(scenario: str, kube_version: str) -> None:
    """Each object passes the strict (no unknown field) schema of Kubernetes 1.30 and 1.37."""
    objects = render(scenario_values(scenario))
    validated = 0
    for obj in objects:
        if obj["kind"] in CUSTOM_KINDS:
            continue
        kubernetes_validate.validate(obj, kube_version, strict=True)
        validated += 1
    # The operator's Deployment, ServiceAccount and RBAC render in every scenario.
    assert validated >= 4


def test_strict_validation_refuses_a_misspelt_field() -> None:
    """The validator used above really is strict: a typo in a rendered object fails."""
    deployment = copy.deepcopy(only(render(), "Deployment"))
    deployment["spec"]["template"]["spec"]["containers"][0]["imagePulPolicy"] = "Always"
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(deployment, "1.37.0", strict=True)


def test_defaults_render_only_the_operator_and_its_rbac() -> None:
    """Optional parts (example cluster, dev Redis, dashboards, test hook) are off by default,
    and namespaced mode needs nothing cluster-scoped: no ClusterRole at all."""
    kinds = sorted(o["kind"] for o in render())
    assert kinds == ["Deployment", "Role", "RoleBinding", "ServiceAccount"]


def test_operator_runs_one_replica_recreated_with_a_liveness_probe() -> None:
    """kopf's deployment advice: one replica, Recreate, liveness on its /healthz endpoint."""
    deployment = only(render(), "Deployment", FULLNAME)
    assert deployment["spec"]["replicas"] == 1
    assert deployment["spec"]["strategy"] == {"type": "Recreate"}
    container = deployment["spec"]["template"]["spec"]["containers"][0]
    args = container["args"]
    assert args[0] == "operator"
    assert args[args.index("--liveness") + 1] == "http://0.0.0.0:8080/healthz"
    probe = container["livenessProbe"]["httpGet"]
    assert probe == {"path": "/healthz", "port": "health"}
    assert {"name": "health", "containerPort": 8080, "protocol": "TCP"} in container["ports"]
    assert container["image"] == "ghcr.io/nommie/gamesync-operator:0.1.0"


def test_namespaced_mode_watches_the_release_namespace_by_default() -> None:
    objects = render()
    args = only(objects, "Deployment")["spec"]["template"]["spec"]["containers"][0]["args"]
    assert "--all-namespaces" not in args
    assert args[args.index("--namespace") + 1] == NAMESPACE
    assert only(objects, "Role")["metadata"]["namespace"] == NAMESPACE
    binding = only(objects, "RoleBinding")
    assert binding["subjects"] == [
        {"kind": "ServiceAccount", "name": FULLNAME, "namespace": NAMESPACE}
    ]


def test_namespaced_mode_grants_a_role_in_each_listed_namespace() -> None:
    """One Role and RoleBinding per namespace, one --namespace flag each, duplicates collapsed."""
    objects = render(scenario_values("02-namespaces"))
    args = only(objects, "Deployment")["spec"]["template"]["spec"]["containers"][0]["args"]
    flagged = [args[i + 1] for i, arg in enumerate(args) if arg == "--namespace"]
    assert flagged == ["games-eu", "games-us"]
    assert sorted(r["metadata"]["namespace"] for r in of_kind(objects, "Role")) == flagged
    bindings = of_kind(objects, "RoleBinding")
    assert sorted(b["metadata"]["namespace"] for b in bindings) == flagged
    for binding in bindings:
        # The ServiceAccount lives in the release namespace, whatever namespace it manages.
        assert binding["subjects"][0]["namespace"] == NAMESPACE
        assert binding["subjects"][0]["name"] == "gamesync-operator-sa"
    assert of_kind(objects, "ClusterRole") == []
    assert of_kind(objects, "ClusterRoleBinding") == []


def test_cluster_wide_mode_uses_one_cluster_role_and_no_roles() -> None:
    objects = render(scenario_values("03-cluster-wide"))
    assert of_kind(objects, "Role") == []
    assert of_kind(objects, "RoleBinding") == []
    container = only(objects, "Deployment")["spec"]["template"]["spec"]["containers"][0]
    assert "--all-namespaces" in container["args"]
    assert "--namespace" not in container["args"]
    granted = _grants(only(objects, "ClusterRole")["rules"])
    # kopf's scanning is off: no namespaces or CRDs to list and watch, cluster-wide either.
    assert ("", "namespaces") not in granted
    assert ("apiextensions.k8s.io", "customresourcedefinitions") not in granted
    assert only(objects, "ClusterRoleBinding")["roleRef"]["name"] == FULLNAME
    assert container["image"] == (
        "registry.example.com/gamesync/operator:0.1.0@sha256:"
        "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
    )


#: What the operator needs in every namespace it manages (docs/operator.md), and nothing more:
#: tests/operator/test_rbac.py derives the same from every API call of the KMock suite.
#: Optional children: also deleted when their mode or switch is turned off.
WATCHED_OPTIONAL = {"get", "list", "watch", "create", "patch", "delete"}
OPERATOR_NEEDS: dict[tuple[str, str], set[str]] = {
    ("gamesync.nommie.dev", "gamesyncclusters"): {"get", "list", "watch", "patch"},
    ("gamesync.nommie.dev", "gamesyncclusters/status"): {"patch"},
    ("gamesync.nommie.dev", "gamesyncclusters/finalizers"): {"update"},
    # Children are watched too, so that a deleted or edited one is repaired at once; a change
    # of spec.gateway.shards deletes the previous layout's Deployments and shard Services.
    ("apps", "deployments"): WATCHED_OPTIONAL,
    ("", "services"): WATCHED_OPTIONAL,
    ("", "configmaps"): {"get", "create", "patch"},
    ("", "secrets"): {"get", "create", "patch"},
    ("", "pods"): {"list", "patch"},
    ("", "events"): {"create"},
    ("policy", "poddisruptionbudgets"): {"get", "list", "watch", "create", "patch"},
    ("gateway.networking.k8s.io", "httproutes"): WATCHED_OPTIONAL,
    ("networking.k8s.io", "ingresses"): WATCHED_OPTIONAL,
    ("networking.k8s.io", "networkpolicies"): WATCHED_OPTIONAL,
    ("autoscaling", "horizontalpodautoscalers"): WATCHED_OPTIONAL,
    ("keda.sh", "scaledobjects"): WATCHED_OPTIONAL,
    ("monitoring.coreos.com", "podmonitors"): WATCHED_OPTIONAL,
}


def _grants(rules: list[dict[str, Any]]) -> dict[tuple[str, str], set[str]]:
    granted: dict[tuple[str, str], set[str]] = {}
    for rule in rules:
        for group in rule["apiGroups"]:
            for resource in rule["resources"]:
                granted.setdefault((group, resource), set()).update(rule["verbs"])
    return granted


@pytest.mark.parametrize("scenario_name", ["defaults", "03-cluster-wide"])
def test_rbac_grants_exactly_what_the_operator_needs_and_no_wildcards(scenario_name: str) -> None:
    objects = render(scenario_values(scenario_name))
    rules = [
        rule
        for kind in ("Role", "ClusterRole")
        for o in of_kind(objects, kind)
        for rule in o["rules"]
    ]
    assert _grants(rules) == OPERATOR_NEEDS
    for rule in rules:
        assert "*" not in rule["verbs"] + rule["resources"] + rule["apiGroups"]
    # Secrets are read by name only: no list or watch, in either mode.
    assert not {"list", "watch"} & _grants(rules)[("", "secrets")]


def test_every_pod_runs_with_restricted_security_defaults(scenario: str) -> None:
    """Non-root, RuntimeDefault seccomp, no escalation, no capabilities, read-only root."""
    checked = 0
    for name, spec in pod_specs(render(scenario_values(scenario))):
        pod = spec.get("securityContext", {})
        assert pod.get("runAsNonRoot") is True, name
        assert pod.get("runAsUser", 0) != 0, name
        assert pod.get("seccompProfile") == {"type": "RuntimeDefault"}, name
        for container in spec["containers"]:
            ctx = container["securityContext"]
            assert ctx["allowPrivilegeEscalation"] is False, name
            assert ctx["readOnlyRootFilesystem"] is True, name
            assert ctx["capabilities"]["drop"] == ["ALL"], name
            assert "add" not in ctx["capabilities"], name
        checked += 1
    assert checked >= 1


def test_selectors_use_stable_labels_only() -> None:
    """Selectors are immutable, so they never carry the chart or app version."""
    objects = render(scenario_values("04-kind-dev"))
    for workload in of_kind(objects, "Deployment"):
        selector = workload["spec"]["selector"]["matchLabels"]
        assert not {"helm.sh/chart", "app.kubernetes.io/version"} & selector.keys()
        template_labels = workload["spec"]["template"]["metadata"]["labels"]
        assert selector.items() <= template_labels.items()
    for service in of_kind(objects, "Service"):
        assert (
            not {"helm.sh/chart", "app.kubernetes.io/version"} & service["spec"]["selector"].keys()
        )


def test_every_object_carries_the_common_labels(scenario: str) -> None:
    for obj in render(scenario_values(scenario)):
        labels = obj["metadata"]["labels"]
        assert labels["app.kubernetes.io/name"] == "gamesync-operator"
        assert labels["app.kubernetes.io/instance"] == RELEASE
        assert labels["app.kubernetes.io/managed-by"] == "Helm"
        assert labels["helm.sh/chart"] == "gamesync-operator-0.1.0"


def test_long_release_names_are_truncated_to_63_characters() -> None:
    release = "a-release-name-that-is-much-longer-than-any-dns-label-allows-really"
    for obj in render({}, name=release):
        assert len(obj["metadata"]["name"]) <= 63
        assert not obj["metadata"]["name"].endswith("-")


def test_release_named_like_the_chart_is_not_repeated() -> None:
    names = {o["metadata"]["name"] for o in render({}, name="gamesync-operator")}
    assert names == {"gamesync-operator"}


def test_dev_redis_backs_the_example_cluster() -> None:
    """The example cluster's Redis URL Secret points at the dev Redis Service."""
    objects = render(scenario_values("04-kind-dev"))
    cluster = only(objects, "GameSyncCluster")
    ref = cluster["spec"]["redis"]["urlSecretRef"]
    secret = only(objects, "Secret", ref["name"])
    service = only(objects, "Service", f"{FULLNAME}-redis")
    port = service["spec"]["ports"][0]["port"]
    assert secret["stringData"][ref["key"]] == f"redis://{FULLNAME}-redis.{NAMESPACE}.svc:{port}/0"
    redis = only(objects, "Deployment", f"{FULLNAME}-redis")
    assert redis["spec"]["replicas"] == 1
    pod_labels = redis["spec"]["template"]["metadata"]["labels"]
    assert service["spec"]["selector"].items() <= pod_labels.items()
    # ...and the operator's own pods are not selected by the Redis Service.
    operator_labels = only(objects, "Deployment", FULLNAME)["spec"]["template"]["metadata"][
        "labels"
    ]
    assert not service["spec"]["selector"].items() <= operator_labels.items()


def test_example_cluster_gets_the_gateway_image_when_its_spec_names_none() -> None:
    values = scenario_values("04-kind-dev")
    values["gatewayImage"] = {
        "repository": "gamesync-gateway",
        "tag": "abc123",
        "pullPolicy": "Never",
    }
    gateway = only(render(values), "GameSyncCluster")["spec"]["gateway"]
    assert gateway["image"] == "gamesync-gateway:abc123"
    assert gateway["imagePullPolicy"] == "Never"
    assert gateway["replicas"] == 1  # the rest of the spec is kept


def test_example_cluster_keeps_its_own_image_and_redis() -> None:
    spec = only(render(scenario_values("05-observability")), "GameSyncCluster")["spec"]
    assert spec["gateway"]["image"] == "registry.example.com/gamesync/gateway:0.1.0"
    assert spec["redis"] == {"mode": "Cluster", "urlSecretRef": {"name": "redis-cluster-url"}}


def test_example_cluster_without_any_redis_is_refused_at_render() -> None:
    with pytest.raises(helm.HelmRenderError, match=r"exampleCluster\.spec\.redis is required"):
        render({"exampleCluster": {"enabled": True, "name": "x", "spec": {}}})


def test_helm_test_hook_targets_the_example_clusters_service() -> None:
    pod = only(render(scenario_values("04-kind-dev")), "Pod")
    assert pod["metadata"]["annotations"]["helm.sh/hook"] == "test"
    assert pod["spec"]["restartPolicy"] == "Never"
    # The operator names the gateway Service after the cluster; the public port is 8000.
    assert pod["spec"]["containers"][0]["args"][1:] == [f"demo.{NAMESPACE}.svc", "8000"]
    assert pod["spec"]["containers"][0]["image"] == "ghcr.io/nommie/gamesync-gateway:0.1.0"


def test_helm_test_hook_is_absent_without_a_gateway_to_test() -> None:
    assert of_kind(render({"tests": {"enabled": True}}), "Pod") == []
    named = render({"tests": {"enabled": True, "gatewayService": "edge"}})
    assert only(named, "Pod")["spec"]["containers"][0]["args"][1] == f"edge.{NAMESPACE}.svc"
    off = scenario_values("04-kind-dev") | {"tests": {"enabled": False}}
    assert of_kind(render(off), "Pod") == []


def test_notes_tell_how_to_check_the_install() -> None:
    text = notes(scenario_values("04-kind-dev"))
    assert f"kubectl -n {NAMESPACE} rollout status deployment/{FULLNAME}" in text
    assert f"helm test {RELEASE} -n {NAMESPACE}" in text
    assert "get gsc demo" in text
    assert "helm test" not in notes({})


@pytest.mark.parametrize("scenario_name", ["defaults", "03-cluster-wide", "05-observability"])
def test_the_operator_accepts_the_flags_the_chart_passes(scenario_name: str) -> None:
    """The rendered args parse with the operator's own CLI into its identity and allow-list."""
    container = only(render(scenario_values(scenario_name)), "Deployment")["spec"]["template"][
        "spec"
    ]["containers"][0]
    config = cli.config_from(cli.parse(container["args"][1:]))
    assert config.peer is not None
    assert config.peer.namespace == NAMESPACE
    assert dict(config.peer.labels) == {
        "app.kubernetes.io/name": "gamesync-operator",
        "app.kubernetes.io/instance": RELEASE,
    }
    assert config.scan_namespaces is False
    if scenario_name == "05-observability":
        assert config.images.patterns == ("registry.example.com/gamesync/gateway:*",)
        assert config.images.allows("registry.example.com/gamesync/gateway:0.1.0")
    else:
        assert config.images.allows("ghcr.io/nommie/gamesync-gateway:0.1.0")
        assert config.images.allows("ghcr.io/nommie/gamesync-gateway@sha256:" + "0" * 64)
        assert not config.images.allows("ghcr.io/nommie/gamesync-gateway-evil:0.1.0")
        assert not config.images.allows("docker.io/library/redis:8")
