"""The test world's server-side apply model behaves as the API server documents it."""

from __future__ import annotations

from typing import Any

import kmock
import pytest
from apply_emulator import apply, managers, update

BASE: dict[str, Any] = {
    "apiVersion": "apps/v1",
    "kind": "Deployment",
    "metadata": {"name": "d", "namespace": "ns"},
    "spec": {
        "replicas": 2,
        "template": {"spec": {"containers": [{"name": "gw", "image": "gw:1"}]}},
    },
}


def _owners(obj: dict[str, Any], *path: Any) -> set[str]:
    return {m for m, _, paths in managers(obj) if tuple(path) in paths}


def test_a_field_another_manager_changed_conflicts_unless_forced() -> None:
    created = apply(None, BASE, "op", force=False)
    edited = update(created, {**created, "spec": {**created["spec"], "replicas": 5}}, "hpa")
    assert _owners(edited, "spec", "replicas") == {"hpa"}
    with pytest.raises(kmock.KubernetesError) as refused:
        apply(edited, BASE, "op", force=False)
    (cause,) = refused.value.details["causes"]
    assert cause["field"] == ".spec.replicas"
    assert cause["message"] == 'conflict with "hpa" using apps/v1'
    forced = apply(edited, BASE, "op", force=True)
    assert forced["spec"]["replicas"] == 2
    assert _owners(forced, "spec", "replicas") == {"op"}


def test_the_same_value_is_shared_not_a_conflict() -> None:
    created = apply(None, BASE, "op", force=False)
    again = apply(created, BASE, "other", force=False)
    assert _owners(again, "spec", "replicas") == {"op", "other"}


def test_a_field_no_longer_applied_is_removed_unless_someone_else_owns_it() -> None:
    created = apply(None, BASE, "op", force=False)
    without = {**BASE, "spec": {k: v for k, v in BASE["spec"].items() if k != "replicas"}}
    assert "replicas" not in apply(created, without, "op", force=False)["spec"]
    shared = apply(created, BASE, "hpa", force=False)
    assert apply(shared, without, "op", force=False)["spec"]["replicas"] == 2


def test_list_items_merge_by_key_and_go_whole() -> None:
    two = {
        **BASE,
        "spec": {
            "template": {
                "spec": {"containers": [{"name": "gw", "image": "gw:1"}, {"name": "sidecar"}]}
            }
        },
    }
    created = apply(None, two, "op", force=False)
    dropped = apply(created, BASE, "op", force=False)
    assert [c["name"] for c in dropped["spec"]["template"]["spec"]["containers"]] == ["gw"]
