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
    "OWN_MANAGERS",
    "controlled_by",
    "describe_controller",
    "field_managers",
    "foreign",
    "stamp",
]

#: The field managers that are this operator: today's, and the name the API server gave the
#: hand-written client of earlier versions (it sent no fieldManager, so its User-Agent's first
#: word was used). Fields only these own are ours to take back with `force`.
OWN_MANAGERS = frozenset({"gamesync-operator", "python-httpx"})
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
