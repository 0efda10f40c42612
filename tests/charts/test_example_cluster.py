"""Example GameSyncClusters validate against the CRD's schema; nonsense is refused.

The CRD is generated from code by the operator (charts/gamesync-operator/crds/); these tests
read it from there. jsonschema checks the OpenAPI v3 structure, types, enums and required
fields; the CEL rules are the operator's tests' business (cel-python).
"""

from __future__ import annotations

import copy
from typing import Any

import jsonschema
import kubernetes_validate
import pytest
import yaml
from chart_rendering import CRD_FILE, EXAMPLE_FILE, only, render, scenario_values

pytestmark = pytest.mark.skipif(not CRD_FILE.exists(), reason=f"{CRD_FILE.name} not generated yet")


def _crd() -> dict[str, Any]:
    crd: dict[str, Any] = yaml.safe_load(CRD_FILE.read_text())
    return crd


def _validator() -> jsonschema.Draft7Validator:
    version = next(v for v in _crd()["spec"]["versions"] if v["storage"])
    return jsonschema.Draft7Validator(version["schema"]["openAPIV3Schema"])


def _errors(resource: dict[str, Any]) -> list[str]:
    return [error.message for error in _validator().iter_errors(resource)]


@pytest.mark.parametrize("kube_version", ["1.30.0", "1.37.0"])
def test_crd_is_a_valid_custom_resource_definition(kube_version: str) -> None:
    kubernetes_validate.validate(_crd(), kube_version, strict=True)


def test_chart_api_version_and_kind_match_the_crd() -> None:
    crd = _crd()
    cluster = only(render(scenario_values("04-kind-dev")), "GameSyncCluster")
    served = {f"{crd['spec']['group']}/{v['name']}" for v in crd["spec"]["versions"] if v["served"]}
    assert cluster["apiVersion"] in served
    assert cluster["kind"] == crd["spec"]["names"]["kind"]
    assert crd["spec"]["scope"] == "Namespaced"


@pytest.mark.parametrize("scenario_name", ["04-kind-dev", "05-observability"])
def test_rendered_example_cluster_validates(scenario_name: str) -> None:
    cluster = only(render(scenario_values(scenario_name)), "GameSyncCluster")
    assert _errors(cluster) == []


@pytest.mark.skipif(
    not EXAMPLE_FILE.exists(), reason="deploy/examples/gamesynccluster.yaml not written yet"
)
def test_repository_example_validates() -> None:
    for resource in yaml.safe_load_all(EXAMPLE_FILE.read_text()):
        if resource and resource.get("kind") == "GameSyncCluster":
            assert _errors(resource) == []


def _broken(change: str) -> dict[str, Any]:
    cluster = copy.deepcopy(only(render(scenario_values("04-kind-dev")), "GameSyncCluster"))
    spec = cluster["spec"]
    if change == "no gateway image":
        del spec["gateway"]["image"]
    elif change == "no redis":
        del spec["redis"]
    elif change == "unknown exposure mode":
        spec["exposure"]["mode"] = "LoadBalancer"
    elif change == "replicas as text":
        spec["gateway"]["replicas"] = "two"
    elif change == "negative replicas":
        spec["gateway"]["replicas"] = -1
    elif change == "no spec":
        del cluster["spec"]
    return cluster


@pytest.mark.parametrize(
    "change",
    [
        "no gateway image",
        "no redis",
        "unknown exposure mode",
        "replicas as text",
        "negative replicas",
        "no spec",
    ],
)
def test_a_broken_cluster_is_refused(change: str) -> None:
    assert _errors(_broken(change)) != []
