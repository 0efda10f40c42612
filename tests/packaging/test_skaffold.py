"""skaffold.yaml is valid for skaffold/v4beta14 and names only things that exist."""

from __future__ import annotations

import hashlib
import json
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import helm_python as helm
import jsonschema
import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
#: Vendored, unmodified (source, version and licence: schemas/README.md).
SCHEMA_FILE = Path(__file__).resolve().parent / "schemas" / "skaffold-v4beta14.json"
CONFIG: dict[str, Any] = yaml.safe_load((ROOT / "skaffold.yaml").read_text())
CHART = ROOT / "charts" / "gamesync-operator"


def _schema() -> dict[str, Any]:
    schema: dict[str, Any] = json.loads(SCHEMA_FILE.read_text())
    return schema


def test_vendored_schema_is_the_copy_its_readme_records() -> None:
    """The schema is third-party: its README names source, licence and the exact bytes."""
    readme = (SCHEMA_FILE.parent / "README.md").read_text()
    digest = hashlib.sha256(SCHEMA_FILE.read_bytes()).hexdigest()
    assert f"`{SCHEMA_FILE.name}` SHA-256: `{digest}`" in readme
    assert "Apache License 2.0" in readme


def _release() -> dict[str, Any]:
    releases: list[dict[str, Any]] = CONFIG["deploy"]["helm"]["releases"]
    assert len(releases) == 1
    return releases[0]


def test_config_validates_against_the_v4beta14_schema() -> None:
    assert CONFIG["apiVersion"] == "skaffold/v4beta14"
    jsonschema.validate(CONFIG, _schema())


def test_check_jsonschema_accepts_it_as_ci_would_run_it() -> None:
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "check_jsonschema",
            "--schemafile",
            str(SCHEMA_FILE),
            "skaffold.yaml",
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize(
    ("path", "typo"),
    [((), "deployy"), (("deploy", "helm", "releases", 0), "chartPat")],
)
def test_schema_refuses_a_misspelt_key(path: tuple[str | int, ...], typo: str) -> None:
    """The schema check above has teeth: an unknown key anywhere fails it."""
    broken = json.loads(json.dumps(CONFIG))
    node = broken
    for step in path:
        node = node[step]
    node[typo] = "x"
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(broken, _schema())


def _artifacts() -> dict[str, dict[str, Any]]:
    return {a["image"]: a for a in CONFIG["build"]["artifacts"]}


def test_every_path_named_exists() -> None:
    release = _release()
    assert (ROOT / release["chartPath"] / "Chart.yaml").is_file()
    for values_file in release.get("valuesFiles", []):
        assert (ROOT / values_file).is_file(), values_file
    for artifact in _artifacts().values():
        context = ROOT / artifact.get("context", ".")
        assert context.is_dir()
        assert (context / artifact["docker"].get("dockerfile", "Dockerfile")).is_file()


def test_artifacts_build_both_dockerfile_targets() -> None:
    dockerfile = (ROOT / "Dockerfile").read_text()
    targets = {a["docker"]["target"] for a in _artifacts().values()}
    assert targets == {"gateway", "operator"}
    for target in targets:
        assert re.search(rf"^FROM \S+ AS {target}$", dockerfile, re.MULTILINE)
    for artifact in _artifacts().values():
        for arg in artifact["docker"].get("buildArgs", {}):
            assert re.search(rf"^ARG {arg}=", dockerfile, re.MULTILINE), arg


def test_no_file_sync_that_would_leave_stale_code_running() -> None:
    """Neither process reloads code and gateway pods are read-only: every change rebuilds."""
    for artifact in _artifacts().values():
        assert "sync" not in artifact, artifact["image"]


def _values_keys(values: dict[str, Any], prefix: str = "") -> set[str]:
    keys = set()
    for key, value in values.items():
        keys.add(prefix + key)
        if isinstance(value, dict):
            keys |= _values_keys(value, f"{prefix}{key}.")
    return keys


def _nest(dotted: dict[str, Any]) -> dict[str, Any]:
    nested: dict[str, Any] = {}
    for key, value in dotted.items():
        *parents, leaf = key.split(".")
        node = nested
        for parent in parents:
            node = node.setdefault(parent, {})
        node[leaf] = value
    return nested


def _merge(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    merged = dict(base)
    for key, value in over.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = _merge(merged[key], value)
        else:
            merged[key] = value
    return merged


def test_image_templates_name_real_artifacts_and_chart_values() -> None:
    release = _release()
    chart_keys = _values_keys(yaml.safe_load((CHART / "values.yaml").read_text()))
    artifact_vars = {re.sub(r"\W", "_", name) for name in _artifacts()}
    templated = release["setValueTemplates"]
    for key, template in templated.items():
        assert key in chart_keys, key
        for variable in re.findall(r"\{\{\.IMAGE_(?:REPO|TAG|DIGEST)_(\w+)\}\}", template):
            assert variable in artifact_vars, template
    # Both images reach the chart: the operator's and the gateway's (example cluster, tests).
    assert {"image.repository", "image.tag", "gatewayImage.repository", "gatewayImage.tag"} <= set(
        templated
    )
    for key in release.get("setValues", {}):
        assert key in chart_keys, key


def _skaffold_values() -> dict[str, Any]:
    """The values skaffold hands Helm, with the image templates filled as skaffold would."""
    release = _release()
    values: dict[str, Any] = {}
    for values_file in release["valuesFiles"]:
        values = _merge(values, yaml.safe_load((ROOT / values_file).read_text()) or {})
    filled = {
        key: re.sub(
            r"\{\{\.IMAGE_(REPO|TAG)_(\w+)\}\}", lambda m: f"{m.group(2)}-{m.group(1)}".lower(), t
        )
        for key, t in release["setValueTemplates"].items()
    }
    return _merge(values, _nest({**release.get("setValues", {}), **filled}))


def test_the_deployed_release_has_dev_redis_a_sample_cluster_and_injected_images() -> None:
    release = _release()
    with helm.Chart.load(ROOT / release["chartPath"]) as chart:
        manifests = chart.render(
            _skaffold_values(), name=release["name"], namespace=release["namespace"]
        )
    objects = [
        doc
        for template, text in manifests.items()
        if template.endswith(".yaml")
        for doc in yaml.safe_load_all(text)
        if doc
    ]
    kinds = {o["kind"]: o for o in objects}
    assert "GameSyncCluster" in kinds
    cluster = kinds["GameSyncCluster"]
    assert cluster["spec"]["gateway"]["image"] == "gamesync_gateway-repo:gamesync_gateway-tag"
    operator = next(
        o for o in objects if o["kind"] == "Deployment" and "redis" not in o["metadata"]["name"]
    )
    container = operator["spec"]["template"]["spec"]["containers"][0]
    assert container["image"] == "gamesync_operator-repo:gamesync_operator-tag"
    assert any(
        o["kind"] == "Deployment" and o["metadata"]["name"].endswith("-redis") for o in objects
    )
    # The forwarded gateway Services are the ones the operator creates for the sample cluster:
    # named after it, in the release namespace, public port 8000 and <name>-internal on 9000
    # (docs/CONTRACTS-internal.md).
    forwards = {(f["resourceName"], f["port"]) for f in CONFIG["portForward"]}
    operator_made = {cluster["metadata"]["name"], f"{cluster['metadata']['name']}-internal"}
    assert (cluster["metadata"]["name"], 8000) in forwards
    assert (f"{cluster['metadata']['name']}-internal", 9000) in forwards
    # Every other forward names a Service of the release, on a port it has.
    services = {
        o["metadata"]["name"]: {p["port"] for p in o["spec"]["ports"]}
        for o in objects
        if o["kind"] == "Service"
    }
    for name, port in forwards:
        if name not in operator_made:
            assert port in services[name], (name, port)
    for forward in CONFIG["portForward"]:
        assert forward["resourceType"] == "service"
        assert forward["namespace"] == release["namespace"]


def _kind_profile() -> dict[str, Any]:
    profile: dict[str, Any] = next(p for p in CONFIG["profiles"] if p["name"] == "kind")
    return profile


@pytest.mark.parametrize(
    ("context", "active"),
    [
        ("kind-gamesync", True),
        ("kind-kind", True),
        ("gke_proj_zone_prod", False),
        ("minikube", False),
    ],
)
def test_kind_profile_activates_on_kind_contexts_only(context: str, active: bool) -> None:
    patterns = [a["kubeContext"] for a in _kind_profile()["activation"]]
    # skaffold matches kubeContext as a regular expression against the whole context name.
    assert any(re.fullmatch(p, context) for p in patterns) is active


def test_kind_cluster_config_yields_a_context_the_profile_matches() -> None:
    cluster = yaml.safe_load((ROOT / "deploy" / "kind" / "cluster.yaml").read_text())
    assert cluster["kind"] == "Cluster"
    assert cluster["apiVersion"] == "kind.x-k8s.io/v1alpha4"
    context = f"kind-{cluster['name']}"
    patterns = [a["kubeContext"] for a in _kind_profile()["activation"]]
    assert any(re.fullmatch(p, context) for p in patterns)


def test_kind_profile_loads_images_instead_of_pushing() -> None:
    assert {"op": "add", "path": "/build/local/push", "value": False} in _kind_profile()["patches"]
    assert "local" in CONFIG["build"]
