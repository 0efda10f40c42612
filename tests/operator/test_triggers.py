"""What makes a pass due: the owning cluster of a child, and changes that matter."""

from __future__ import annotations

import copy
from typing import Any

from gamesync_operator.triggers import ClusterKey, essence, owner_of

CLUSTER: dict[str, Any] = {
    "metadata": {
        "name": "arena",
        "namespace": "games",
        "uid": "u1",
        "generation": 3,
        "resourceVersion": "10",
        "labels": {"team": "a"},
        "annotations": {"gamesync.nommie.dev/last-handled-configuration": "{}"},
    },
    "spec": {"gateway": {"image": "x"}},
    "status": {"readyReplicas": 2},
}


def _changed(mutate: Any) -> bool:
    other = copy.deepcopy(CLUSTER)
    mutate(other)
    return essence(other) != essence(CLUSTER)


def test_spec_labels_annotations_and_deletion_matter_status_and_bookkeeping_do_not() -> None:
    assert _changed(lambda b: b["spec"]["gateway"].update(image="y"))
    assert _changed(lambda b: b["metadata"]["labels"].update(team="b"))
    assert _changed(
        lambda b: b["metadata"]["annotations"].update({"gamesync.nommie.dev/rotate-keys": "1"})
    )
    assert _changed(lambda b: b["metadata"].update(deletionTimestamp="2026-01-01T00:00:00Z"))
    assert not _changed(lambda b: b["status"].update(readyReplicas=3))
    assert not _changed(lambda b: b["metadata"].update(resourceVersion="11"))
    assert not _changed(
        lambda b: b["metadata"]["annotations"].update(
            {"gamesync.nommie.dev/last-handled-configuration": "{...}"}
        )
    )


def test_a_child_names_its_controlling_cluster_and_nothing_else_does() -> None:
    ref = {
        "apiVersion": "gamesync.nommie.dev/v1alpha1",
        "kind": "GameSyncCluster",
        "name": "arena",
        "uid": "u1",
        "controller": True,
    }
    child = {"metadata": {"namespace": "games", "ownerReferences": [ref]}}
    assert owner_of(child) == ClusterKey("games", "arena", "u1")
    assert str(owner_of(child)) == "games/arena"
    not_controller = {
        "metadata": {"namespace": "games", "ownerReferences": [{**ref, "controller": False}]}
    }
    assert owner_of(not_controller) is None
    foreign = {
        "metadata": {
            "namespace": "games",
            "ownerReferences": [{**ref, "kind": "ReplicaSet", "apiVersion": "apps/v1"}],
        }
    }
    assert owner_of(foreign) is None
    assert owner_of({"metadata": {}}) is None
    assert ClusterKey.of(CLUSTER) == ClusterKey("games", "arena", "u1")
