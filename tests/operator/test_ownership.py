"""Who owns an object and its fields; what the operator may take back; its image policy."""

from __future__ import annotations

import pytest
from gsc_builders import make_spec

from gamesync_operator import ownership
from gamesync_operator.errors import SpecError
from gamesync_operator.kube import _conflicts
from gamesync_operator.policy import ImagePolicy

REF = {"kind": "GameSyncCluster", "name": "arena", "uid": "u1", "controller": True}


def test_only_the_controller_reference_of_this_uid_counts() -> None:
    assert ownership.controlled_by({"metadata": {"ownerReferences": [REF]}}, "u1")
    assert not ownership.controlled_by({"metadata": {"ownerReferences": [REF]}}, "u2")
    not_controller = {**REF, "controller": False}
    assert not ownership.controlled_by({"metadata": {"ownerReferences": [not_controller]}}, "u1")
    assert not ownership.controlled_by({"metadata": {}}, "u1")
    assert ownership.describe_controller({"metadata": {}}) == "no controller"


def test_field_managers_reads_fields_v1() -> None:
    obj = {
        "metadata": {
            "managedFields": [
                {"manager": "a", "fieldsV1": {"f:spec": {"f:replicas": {}}}},
                {"manager": "b", "fieldsV1": {"f:spec": {"f:template": {}}}},
            ]
        }
    }
    assert ownership.field_managers(obj, ("spec", "replicas")) == {"a"}
    assert ownership.foreign({"gamesync-operator", "b", "a"}) == ["a", "b"]


def test_legacy_fields_become_the_operators_applied_ones() -> None:
    obj = {
        "apiVersion": "v1",
        "metadata": {
            "managedFields": [
                {"manager": "python-httpx", "operation": "Update", "fieldsV1": {"f:a": {}}},
                {"manager": "gamesync-operator", "operation": "Apply", "fieldsV1": {"f:b": {}}},
                {"manager": "kubectl-edit", "operation": "Update", "fieldsV1": {"f:c": {}}},
            ]
        },
    }
    upgraded = ownership.upgraded_managed_fields(obj)
    assert upgraded is not None
    assert [(e["manager"], e["operation"]) for e in upgraded] == [
        ("kubectl-edit", "Update"),
        ("gamesync-operator", "Apply"),
    ]
    assert upgraded[1]["fieldsV1"] == {"f:a": {}, "f:b": {}}
    assert ownership.upgraded_managed_fields({"metadata": {"managedFields": upgraded}}) is None
    own_create = {"manager": "gamesync-operator", "operation": "Update", "fieldsV1": {"f:d": {}}}
    folded = ownership.upgraded_managed_fields({"metadata": {"managedFields": [own_create]}})
    assert folded is not None
    assert [(e["manager"], e["operation"], e["fieldsV1"]) for e in folded] == [
        ("gamesync-operator", "Apply", {"f:d": {}})
    ]


def test_stamp_changes_when_the_object_does() -> None:
    a = ownership.stamp({"metadata": {"name": "x"}, "spec": {"v": 1}})
    b = ownership.stamp({"metadata": {"name": "x"}, "spec": {"v": 2}})
    again = ownership.stamp(dict(a))
    key = ownership.APPLIED_ANNOTATION
    assert a["metadata"]["annotations"][key] != b["metadata"]["annotations"][key]
    assert again["metadata"]["annotations"][key] == a["metadata"]["annotations"][key]


def test_apply_conflicts_are_parsed_from_the_status() -> None:
    status = {
        "details": {
            "causes": [
                {
                    "type": "FieldManagerConflict",
                    "message": 'conflict with "kubectl-edit" using apps/v1',
                    "field": ".spec.replicas",
                },
                {"type": "FieldValueInvalid", "message": "x", "field": ".y"},
            ]
        }
    }
    (conflict,) = _conflicts(status)
    assert (conflict.field, conflict.manager) == (".spec.replicas", "kubectl-edit")


def test_the_image_policy_matches_globs_and_refuses_with_a_reason() -> None:
    policy = ImagePolicy(("ghcr.io/nommie/gamesync-gateway:*", "registry.example.com/team/*"))
    assert policy.allows("ghcr.io/nommie/gamesync-gateway:0.1.0")
    assert policy.allows("registry.example.com/team/gw@sha256:abc")
    assert not policy.allows("ghcr.io/nommie/gamesync-gateway-evil:1")
    assert not policy.allows("gamesync-gateway:0.1.0")  # no registry filled in
    assert ImagePolicy().allows("anything:1")
    with pytest.raises(SpecError) as refused:
        policy.check(make_spec(gateway={"image": "evil:1"}))
    assert refused.value.reason == "ImageNotAllowed"
