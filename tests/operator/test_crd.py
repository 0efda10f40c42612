"""The CRD: generated file up to date, schema and CEL rules on good and bad resources."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import celpy
import jsonschema
import kubernetes_validate
import pytest
import yaml
from gsc_builders import raw_spec

from gamesync_operator import crd
from gamesync_operator.errors import SpecError
from gamesync_operator.spec import parse_spec

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "deploy/examples/gamesynccluster.yaml"


def _schema() -> dict[str, Any]:
    version = crd.crd()["spec"]["versions"][0]
    schema: dict[str, Any] = version["schema"]["openAPIV3Schema"]
    return schema


def _resource(spec: dict[str, Any]) -> dict[str, Any]:
    return {
        "apiVersion": "gamesync.nommie.dev/v1alpha1",
        "kind": "GameSyncCluster",
        "metadata": {"name": "arena", "namespace": "games"},
        "spec": spec,
    }


def _to_jsonschema(node: Any) -> Any:
    """OpenAPI v3 (structural) to JSON Schema: drop the x-kubernetes-* extensions."""
    if isinstance(node, dict):
        return {k: _to_jsonschema(v) for k, v in node.items() if not k.startswith("x-kubernetes-")}
    if isinstance(node, list):
        return [_to_jsonschema(v) for v in node]
    return node


def _cel_rules(schema: dict[str, Any], value: Any, old: Any, path: str) -> list[str]:
    """Evaluate every x-kubernetes-validations rule where the object has a value.

    Transition rules (those naming oldSelf) run only when an old value exists, as in the API server.
    """
    errors: list[str] = []
    env = celpy.Environment()
    for rule in schema.get("x-kubernetes-validations", []):
        text = rule["rule"]
        activation = {"self": celpy.json_to_cel(value)}
        if "oldSelf" in text:
            if old is None:
                continue
            activation["oldSelf"] = celpy.json_to_cel(old)
        result = env.program(env.compile(text)).evaluate(activation)
        if not isinstance(result, celpy.celtypes.BoolType):
            raise AssertionError(f"{path}: rule {text!r} gave {result!r}")
        if not bool(result):
            errors.append(f"{path}: {rule['message']}")
    if isinstance(value, dict):
        for name, prop in schema.get("properties", {}).items():
            if name in value:
                old_child = old.get(name) if isinstance(old, dict) else None
                errors += _cel_rules(prop, value[name], old_child, f"{path}.{name}")
    if isinstance(value, list) and "items" in schema:
        for index, item in enumerate(value):  # no oldSelf for items: none of ours need it
            errors += _cel_rules(schema["items"], item, None, f"{path}[{index}]")
    return errors


def admit(spec: dict[str, Any], old_spec: dict[str, Any] | None = None) -> list[str]:
    """What the API server would say: defaulting, schema, then CEL. Empty list: admitted."""
    schema = _schema()
    obj = crd.apply_defaults(schema, _resource(copy.deepcopy(spec)))
    validator = jsonschema.Draft4Validator(_to_jsonschema(schema))
    errors = [f"schema: {e.message}" for e in validator.iter_errors(obj)]
    if errors:
        return errors
    old = crd.apply_defaults(schema, _resource(old_spec)) if old_spec is not None else None
    return _cel_rules(schema, obj, old, "")


def test_committed_crd_file_is_generated_from_code() -> None:
    assert (ROOT / crd.CRD_FILE).read_text() == crd.render_yaml()


@pytest.mark.parametrize("kube_version", ["1.30.0", "1.37.0"])
def test_crd_passes_the_strict_kubernetes_schema(kube_version: str) -> None:
    kubernetes_validate.validate(crd.crd(), kube_version, strict=True)


def test_crd_declares_scale_status_printer_columns_and_short_name() -> None:
    spec = crd.crd()["spec"]
    assert spec["names"]["shortNames"] == ["gsc"]
    assert spec["scope"] == "Namespaced"
    (version,) = spec["versions"]
    assert version["name"] == "v1alpha1"
    assert version["subresources"]["status"] == {}
    assert version["subresources"]["scale"] == {
        "specReplicasPath": ".spec.gateway.replicas",
        "statusReplicasPath": ".status.shardReplicas",
        "labelSelectorPath": ".status.shardSelector",
    }
    columns = [c["name"] for c in version["additionalPrinterColumns"]]
    for wanted in ("Ready", "Desired", "Ready replicas", "Connections", "Active kid", "Age"):
        assert wanted in columns


def test_example_resource_is_admitted_and_parses() -> None:
    doc = yaml.safe_load(EXAMPLE.read_text())
    assert admit(doc["spec"]) == []
    spec = parse_spec(doc["metadata"]["name"], doc["metadata"]["namespace"], doc["spec"])
    assert spec.signing_keys.rotation_interval == 720 * 3600
    assert spec.tracing.enabled is True


def test_minimal_resource_is_admitted_with_defaults() -> None:
    assert admit(raw_spec()) == []
    defaulted = crd.apply_defaults(crd.spec_schema(), raw_spec())
    assert defaulted["autoscaling"]["mode"] == "Operator"
    assert defaulted["signingKeys"]["algorithm"] == "ES256"
    assert defaulted["gateway"]["terminationGracePeriodSeconds"] == 60
    assert defaulted["exposure"]["mode"] == "HTTPRoute"


BAD: dict[str, tuple[dict[str, Any], str]] = {
    "min-above-max": (
        {"autoscaling": {"minReplicas": 5, "maxReplicas": 3}},
        "minReplicas must be <= maxReplicas",
    ),
    "grace-too-short": (
        {"gateway": {"image": "x", "drainSeconds": 60, "terminationGracePeriodSeconds": 30}},
        "terminationGracePeriodSeconds must cover",
    ),
    "rotation-too-frequent": (
        {"signingKeys": {"rotationInterval": "1h", "maxTokenLifetime": "1h"}},
        "rotationInterval must exceed",
    ),
    "tls-without-host": (
        {"exposure": {"mode": "Ingress", "tlsSecretName": "t"}},
        "tlsSecretName needs a host",
    ),
    "route-without-parent": (
        {"exposure": {"mode": "HTTPRoute", "httpRoute": {}}},
        "needs httpRoute.parentRefs",
    ),
    "keda-without-server": ({"autoscaling": {"mode": "KEDA"}}, "KEDA autoscaling needs"),
    "backend-without-url": ({"auth": {"policy": "backend"}}, "policy backend needs backendUrl"),
    "tracing-without-endpoint": (
        {"tracing": {"enabled": True}},
        "tracing.enabled needs an endpoint",
    ),
    "unknown-algorithm": ({"signingKeys": {"algorithm": "none"}}, "schema:"),
    "bad-duration": ({"signingKeys": {"rotationInterval": "30 days"}}, "schema:"),
    "unknown-exposure": ({"exposure": {"mode": "LoadBalancer"}}, "schema:"),
    "no-image": ({"gateway": {"replicas": 2}}, "schema:"),
    "negative-replicas": ({"gateway": {"image": "x", "replicas": -1}}, "schema:"),
    "header-with-a-colon": (
        {"gateway": {"image": "x", "clientAddressHeader": "X-Forwarded-For: 1.2.3.4"}},
        "schema:",
    ),
    "empty-backend-selector": (
        {"networkPolicy": {"backendSelector": {}}},
        "backendSelector must select something",
    ),
    "peer-without-selector": (
        {"networkPolicy": {"publicFrom": [{}]}},
        "a peer needs a namespaceSelector, a podSelector or an ipBlock",
    ),
    "ip-block-with-selector": (
        {"networkPolicy": {"publicFrom": [{"ipBlock": {"cidr": "10.0.0.0/8"}, "podSelector": {}}]}},
        "an ipBlock peer cannot also have selectors",
    ),
    "unknown-selector-operator": (
        {
            "networkPolicy": {
                "backendSelector": {"matchExpressions": [{"key": "a", "operator": "Near"}]}
            }
        },
        "schema:",
    ),
}


@pytest.mark.parametrize("case", sorted(BAD))
def test_nonsense_is_refused_at_apply_time(case: str) -> None:
    overrides, expected = BAD[case]
    spec = raw_spec(**overrides)
    if "gateway" in overrides:
        spec["gateway"] = overrides["gateway"]  # replace, so "no-image" really has none
    errors = admit(spec)
    assert any(expected in e for e in errors), errors


@pytest.mark.parametrize("case", sorted(k for k in BAD if BAD[k][1] != "schema:"))
def test_operator_refuses_what_cel_refuses_with_a_reason(case: str) -> None:
    # A cluster with an older CRD (or a mock API) skips CEL: the operator must still say no.
    overrides, _ = BAD[case]
    spec = raw_spec(**overrides)
    with pytest.raises(SpecError) as caught:
        parse_spec("arena", "games", spec)
    assert caught.value.reason
    assert caught.value.message


def test_algorithm_is_immutable_but_other_key_settings_are_not() -> None:
    old = raw_spec(signingKeys={"algorithm": "ES256"})
    assert admit(raw_spec(signingKeys={"algorithm": "EdDSA"}), old_spec=old) == [
        ".spec.signingKeys.algorithm: algorithm is immutable; create a new GameSyncCluster instead"
    ]
    assert (
        admit(raw_spec(signingKeys={"algorithm": "ES256", "publishLead": "10m"}), old_spec=old)
        == []
    )


def test_grace_period_exactly_at_the_bound_is_admitted() -> None:
    gateway = {
        "image": "x",
        "preStopSeconds": 5,
        "drainSeconds": 30,
        "terminationGracePeriodSeconds": 40,
    }
    assert admit(raw_spec(gateway=gateway)) == []
    gateway["terminationGracePeriodSeconds"] = 39
    assert admit(raw_spec(gateway=gateway)) != []
