"""What makes a pass due, pure: the cluster a watch event is about, and whether it matters.

A GameSyncCluster's pass is asked for when its spec, labels or annotations change (not its
status: the operator writes that itself), when one of its children changes or disappears, and
on a timer as a backstop.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from gamesync_operator.crd import GROUP, KIND

__all__ = ["ClusterKey", "essence", "owner_of"]

#: Annotations that bookkeeping (kopf's, kubectl's) rewrites: no reason for a pass.
_BOOKKEEPING = (f"{GROUP}/last-handled-configuration", "kubectl.kubernetes.io/")


@dataclass(frozen=True, order=True)
class ClusterKey:
    """One GameSyncCluster; the uid tells a re-created one of the same name apart."""

    namespace: str
    name: str
    uid: str

    @classmethod
    def of(cls, body: Mapping[str, Any]) -> ClusterKey:
        meta = body["metadata"]
        return cls(meta["namespace"], meta["name"], meta["uid"])

    def __str__(self) -> str:
        return f"{self.namespace}/{self.name}"


def essence(body: Mapping[str, Any]) -> str:
    """A digest of what a pass reads from the resource itself (spec, labels, annotations)."""
    meta = body.get("metadata") or {}
    annotations = {
        k: v for k, v in (meta.get("annotations") or {}).items() if not k.startswith(_BOOKKEEPING)
    }
    document = {
        "spec": body.get("spec"),
        "labels": meta.get("labels") or {},
        "annotations": annotations,
        "deleting": bool(meta.get("deletionTimestamp")),
    }
    text = json.dumps(document, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode()).hexdigest()


def owner_of(child: Mapping[str, Any]) -> ClusterKey | None:
    """The GameSyncCluster controlling `child` (its controller owner reference), if any."""
    meta = child.get("metadata") or {}
    for ref in meta.get("ownerReferences") or []:
        if (
            ref.get("controller")
            and ref.get("kind") == KIND
            and str(ref.get("apiVersion", "")).startswith(f"{GROUP}/")
            and meta.get("namespace")
        ):
            return ClusterKey(meta["namespace"], ref["name"], ref["uid"])
    return None
