"""Who owns an object and who owns its fields: ownerReferences and managedFields (pure).

The operator changes an object only if it carries this GameSyncCluster's controller reference,
and a field only if no other field manager claims it (server-side apply reports the rest).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping
from typing import Any

__all__ = [
    "APPLIED_ANNOTATION",
    "FIELD_MANAGER",
    "LEGACY_MANAGERS",
    "OWN_MANAGERS",
    "controlled_by",
    "describe_controller",
    "field_managers",
    "foreign",
    "stamp",
    "upgraded_managed_fields",
]

#: The name under which the operator owns the fields it sets (server-side apply).
FIELD_MANAGER = "gamesync-operator"
#: Fields owned only by this name (its create, an Update) are ours to take back with `force`.
OWN_MANAGERS = frozenset({FIELD_MANAGER})
#: The name the API server gave the hand-written client of versions before server-side apply
#: (it sent no fieldManager, so its User-Agent's first word was used).
LEGACY_MANAGERS = frozenset({"python-httpx"})
#: A hash of the last configuration the operator applied: a changed desired state always
#: differs from what is stored, so fields it stopped setting are released by the next apply.
APPLIED_ANNOTATION = "gamesync.nommie.dev/applied-configuration-hash"


def controlled_by(obj: Mapping[str, Any], uid: str) -> bool:
    """Whether `obj` carries the controller ownerReference of the object with `uid`."""
    refs = (obj.get("metadata") or {}).get("ownerReferences") or []
    return any(r.get("uid") == uid and r.get("controller") is True for r in refs)


def describe_controller(obj: Mapping[str, Any]) -> str:
    """Who controls `obj`, for a condition message (never its content)."""
    refs = (obj.get("metadata") or {}).get("ownerReferences") or []
    controller = next((r for r in refs if r.get("controller") is True), None)
    if controller is None:
        return "no controller"
    return f"{controller.get('kind')} {controller.get('name')} (uid {controller.get('uid')})"


def field_managers(obj: Mapping[str, Any] | None, path: Iterable[str]) -> set[str]:
    """Managers whose managedFields claim the field at `path` (plain keys, e.g. spec.replicas)."""
    managers: set[str] = set()
    for entry in ((obj or {}).get("metadata") or {}).get("managedFields") or []:
        node: Any = entry.get("fieldsV1") or {}
        for key in path:
            node = node.get(f"f:{key}") if isinstance(node, Mapping) else None
        if node is not None:
            managers.add(str(entry.get("manager")))
    return managers


def foreign(managers: Iterable[str]) -> list[str]:
    """The managers that are not this operator, sorted."""
    return sorted(set(managers) - OWN_MANAGERS)


def stamp(obj: dict[str, Any]) -> dict[str, Any]:
    """`obj` with APPLIED_ANNOTATION set to the hash of its content (in place, returned)."""
    annotations = obj["metadata"].setdefault("annotations", {})
    annotations.pop(APPLIED_ANNOTATION, None)
    digest = hashlib.sha256(json.dumps(obj, sort_keys=True).encode()).hexdigest()[:16]
    annotations[APPLIED_ANNOTATION] = digest
    return obj


def _union(a: Mapping[str, Any], b: Mapping[str, Any]) -> dict[str, Any]:
    out = dict(a)
    for key, value in b.items():
        out[key] = _union(out[key], value) if key in out else value
    return out


def upgraded_managed_fields(obj: Mapping[str, Any]) -> list[dict[str, Any]] | None:
    """managedFields with the operator's own Update entries (its POST create, and the
    pre-apply client of earlier versions) folded into its Apply entry, as kubectl upgrades
    client-side apply; None when there is nothing to fold.

    An apply only removes fields its own Apply entry owns: without this, a field set at create
    time (or by the old client, like the internal port on the public Service) that the operator
    no longer wants would stay forever, and an autoscaler could not be handed `replicas`.
    """
    entries = list((obj.get("metadata") or {}).get("managedFields") or [])
    legacy = [
        e
        for e in entries
        if e.get("manager") in LEGACY_MANAGERS | OWN_MANAGERS
        and e.get("operation") == "Update"
        and not e.get("subresource")
    ]
    if not legacy:
        return None
    mine = [
        e for e in entries if e.get("manager") == FIELD_MANAGER and e.get("operation") == "Apply"
    ]
    fields: dict[str, Any] = {}
    for entry in (*mine, *legacy):
        fields = _union(fields, entry.get("fieldsV1") or {})
    kept = [e for e in entries if e not in legacy and e not in mine]
    applied = {
        "manager": FIELD_MANAGER,
        "operation": "Apply",
        "apiVersion": obj.get("apiVersion"),
        "fieldsType": "FieldsV1",
        "fieldsV1": fields,
    }
    return [*kept, applied]
