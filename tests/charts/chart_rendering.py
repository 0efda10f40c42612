"""Renders the gamesync-operator chart offline with helm-python-sdk (the Helm SDK in-process)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import helm_python as helm
import yaml

ROOT = Path(__file__).resolve().parents[2]
CHART = ROOT / "charts" / "gamesync-operator"
CRD_FILE = CHART / "crds" / "gamesyncclusters.gamesync.nommie.dev.yaml"
EXAMPLE_FILE = ROOT / "deploy" / "examples" / "gamesynccluster.yaml"
RELEASE = "gs"
NAMESPACE = "games"

#: Every CI scenario, plus the chart's defaults with no values file at all.
SCENARIOS: dict[str, Path | None] = {
    "defaults": None,
    **{p.name.removesuffix("-values.yaml"): p for p in sorted(CHART.glob("ci/*-values.yaml"))},
}


def scenario_values(scenario: str) -> dict[str, Any]:
    """The values a CI scenario passes to the chart (empty for the defaults)."""
    path = SCENARIOS[scenario]
    if path is None:
        return {}
    loaded = yaml.safe_load(path.read_text())
    return dict(loaded) if loaded else {}


def render(
    values: dict[str, Any] | None = None, *, name: str = RELEASE, namespace: str = NAMESPACE
) -> list[dict[str, Any]]:
    """Every object the chart renders for `values`, in template order."""
    with helm.Chart.load(CHART) as chart:
        manifests = chart.render(values or {}, name=name, namespace=namespace)
    objects: list[dict[str, Any]] = []
    for template, text in sorted(manifests.items()):
        if not template.endswith(".yaml"):
            continue  # NOTES.txt and helpers
        objects.extend(doc for doc in yaml.safe_load_all(text) if doc)
    return objects


def notes(values: dict[str, Any] | None = None) -> str:
    """The rendered NOTES.txt."""
    with helm.Chart.load(CHART) as chart:
        manifests = chart.render(values or {}, name=RELEASE, namespace=NAMESPACE)
    return next(text for template, text in manifests.items() if template.endswith("NOTES.txt"))


def only(objects: list[dict[str, Any]], kind: str, name: str | None = None) -> dict[str, Any]:
    """The one object of `kind` (and `name`), failing loudly if there are none or several."""
    found = [
        o for o in objects if o["kind"] == kind and (name is None or o["metadata"]["name"] == name)
    ]
    assert len(found) == 1, f"expected one {kind} {name or ''}, got {len(found)}"
    return found[0]


def of_kind(objects: list[dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    return [o for o in objects if o["kind"] == kind]


def pod_specs(objects: list[dict[str, Any]]) -> Iterator[tuple[str, dict[str, Any]]]:
    """(object name, pod spec) for every Pod and every workload's pod template."""
    for o in objects:
        if o["kind"] == "Pod":
            yield o["metadata"]["name"], o["spec"]
        elif o["kind"] in {"Deployment", "StatefulSet", "DaemonSet", "Job"}:
            yield o["metadata"]["name"], o["spec"]["template"]["spec"]
