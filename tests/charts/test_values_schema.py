"""values.schema.json types every value and refuses unknown keys (Helm enforces it on install)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import helm_python as helm
import jsonschema
import pytest
import yaml
from chart_rendering import CHART, render, scenario_values

SCHEMA: dict[str, Any] = json.loads((CHART / "values.schema.json").read_text())
DEFAULTS: dict[str, Any] = yaml.safe_load((CHART / "values.yaml").read_text())


def _validate(values: dict[str, Any]) -> None:
    with helm.Chart.load(CHART) as chart:
        chart.validate_schema(values)


def test_schema_is_a_valid_draft7_schema() -> None:
    jsonschema.Draft7Validator.check_schema(SCHEMA)


def test_defaults_and_every_scenario_pass(scenario: str) -> None:
    _validate(scenario_values(scenario))


def test_values_yaml_itself_passes_the_schema() -> None:
    jsonschema.Draft7Validator(SCHEMA).validate(DEFAULTS)


@pytest.mark.parametrize(
    ("values", "complaint"),
    [
        ({"watch": {"allNamespaces": "yes"}}, "got string, want boolean"),
        ({"operator": {"livenessPort": "8080"}}, "got string, want integer"),
        ({"watch": {"namespaces": "games"}}, "got string, want array"),
        ({"devRedis": {"enabled": 1}}, "got number, want boolean"),
    ],
)
def test_a_wrong_type_is_refused(values: dict[str, Any], complaint: str) -> None:
    with pytest.raises(helm.HelmValuesError, match=complaint):
        _validate(values)


@pytest.mark.parametrize(
    "values",
    [
        {"replicaCount": 2},  # the operator is always one replica
        {"imagee": {"tag": "x"}},
        {"devRedis": {"enabled": True, "persistence": True}},
        {"watch": {"allNamespace": True}},
        {"tests": {"gatewayPortt": 8000}},
    ],
)
def test_an_unknown_key_is_refused(values: dict[str, Any]) -> None:
    with pytest.raises(helm.HelmValuesError, match="additional properties"):
        _validate(values)


@pytest.mark.parametrize(
    "values",
    [
        {"image": {"digest": "sha256:short"}},
        {"image": {"pullPolicy": "Sometimes"}},
        {"watch": {"namespaces": ["Games_EU"]}},
        {"exampleCluster": {"name": "Not A DNS Label"}},
        {"operator": {"livenessPort": 70000}},
    ],
)
def test_a_bad_value_is_refused(values: dict[str, Any]) -> None:
    with pytest.raises(helm.HelmValuesError):
        _validate(values)


def test_rendering_enforces_the_schema_too() -> None:
    """`helm template` and `helm install` refuse bad values before rendering anything."""
    with pytest.raises(helm.HelmValuesError, match="additional properties"):
        render({"devRedis": {"enabled": True, "persistence": True}})


def _objects(schema: dict[str, Any], path: str = "") -> Iterator[tuple[str, dict[str, Any]]]:
    if schema.get("type") == "object":
        yield path or "/", schema
    for key, sub in schema.get("properties", {}).items():
        yield from _objects(sub, f"{path}/{key}")


#: Maps and pass-through Kubernetes structures, typed by the API server, not by this chart.
FREE_FORM = {
    "/resources/requests", "/resources/limits", "/podAnnotations", "/podLabels", "/nodeSelector",
    "/affinity", "/podSecurityContext", "/securityContext", "/exampleCluster/spec",
    "/devRedis/resources/requests", "/devRedis/resources/limits", "/serviceAccount/annotations",
    "/grafanaDashboard/labels", "/grafanaDashboard/annotations", "/prometheusRule/labels",
    "/serviceMonitor/labels",
}  # fmt: skip


def test_every_object_with_named_keys_refuses_unknown_ones() -> None:
    """additionalProperties: false on every object that lists its properties."""
    objects = dict(_objects(SCHEMA))
    for path, schema in objects.items():
        if path in FREE_FORM:
            continue
        assert schema.get("additionalProperties") is False, path
    assert set(FREE_FORM) <= set(objects)


def test_every_default_value_is_declared_in_the_schema() -> None:
    """values.yaml and the schema describe the same keys (no undocumented value)."""

    def keys(values: dict[str, Any], schema: dict[str, Any], path: str) -> None:
        for key, value in values.items():
            sub = schema.get("properties", {}).get(key)
            assert sub is not None, f"{path}/{key} is not in values.schema.json"
            if isinstance(value, dict) and f"{path}/{key}" not in FREE_FORM and value:
                keys(value, sub, f"{path}/{key}")

    keys(DEFAULTS, SCHEMA, "")
    assert set(SCHEMA["properties"]) == set(DEFAULTS)
