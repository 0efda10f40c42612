"""docs/developing-on-kind.md names the cluster, release, namespace and ports that exist."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[2]
DOC = (ROOT / "docs" / "developing-on-kind.md").read_text()
SKAFFOLD: dict[str, Any] = yaml.safe_load((ROOT / "skaffold.yaml").read_text())
KIND: dict[str, Any] = yaml.safe_load((ROOT / "deploy" / "kind" / "cluster.yaml").read_text())
RELEASE: dict[str, Any] = SKAFFOLD["deploy"]["helm"]["releases"][0]


def test_cluster_commands_use_the_repository_config_and_its_name() -> None:
    assert "kind create cluster --config deploy/kind/cluster.yaml" in DOC
    assert f"kind delete cluster --name {KIND['name']}" in DOC
    assert f"kind-{KIND['name']}" in DOC
    assert "\nskaffold dev\n" in DOC


def test_commands_name_the_release_and_namespace_skaffold_deploys() -> None:
    namespace = RELEASE["namespace"]
    assert f"helm test {RELEASE['name']} -n {namespace}" in DOC
    cluster = RELEASE["setValues"]["exampleCluster.name"]
    assert f"kubectl -n {namespace} get gsc {cluster}" in DOC
    # The operator names the signer Secret after the cluster (<name>-signer) unless told.
    assert f"kubectl -n {namespace} get secret {cluster}-signer" in DOC


def test_every_localhost_port_in_the_doc_is_forwarded() -> None:
    forwarded = {f["localPort"] for f in SKAFFOLD["portForward"]}
    mentioned = {int(p) for p in re.findall(r"localhost:(\d+)", DOC)}
    # 8080 and 9090 are the dev-mode gateway the doc runs on the laptop itself.
    assert mentioned - {8080, 9090} == forwarded
