"""Status conditions in the standard metav1.Condition shape (pure)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from gamesync_operator.signing_secrets import format_time

__all__ = ["CONDITION_TYPES", "Condition", "Health", "cluster_conditions", "merge_conditions"]

CONDITION_TYPES = ("Ready", "Progressing", "Degraded", "KeysReady", "ScalingActive", "Paused")


@dataclass(frozen=True)
class Condition:
    type: str
    status: str  # "True" | "False" | "Unknown"
    reason: str
    message: str


def merge_conditions(
    new: Sequence[Condition],
    previous: Sequence[Mapping[str, Any]] | None,
    generation: int | None,
    now: dt.datetime,
) -> list[dict[str, Any]]:
    """Conditions to write: lastTransitionTime moves only when a condition's status changes.

    Condition types not in `new` are kept as they were (another writer may own them).
    """
    old = {c.get("type"): c for c in previous or [] if isinstance(c, Mapping)}
    out: list[dict[str, Any]] = []
    for cond in new:
        before = old.pop(cond.type, None)
        changed = before is None or before.get("status") != cond.status
        entry: dict[str, Any] = {
            "type": cond.type,
            "status": cond.status,
            "reason": cond.reason,
            "message": cond.message,
            "lastTransitionTime": format_time(now)
            if changed or before is None
            else before.get("lastTransitionTime", format_time(now)),
        }
        if generation is not None:
            entry["observedGeneration"] = generation
        out.append(entry)
    out.extend(dict(c) for c in old.values())
    return out


@dataclass(frozen=True)
class Health:
    """What a pass observed and did, as far as the conditions care."""

    want: int  # replicas the cluster should have now
    ready_floor: int  # fewer ready replicas than this is not Ready (HPA/KEDA: their minimum)
    ready: int
    updated: int | None  # the Deployment's updatedReplicas; None while it does not exist
    keys_ready: Condition
    scaling: Condition  # ScalingActive: whether replicas were decided from complete data
    runtime_stale: int  # ready gateways that have not applied the current runtime config
    problems: Sequence[tuple[str, str]] = ()  # (reason, message), first one names Degraded
    changed: Sequence[str] = ()  # writes this pass made


def cluster_conditions(h: Health) -> list[Condition]:
    """Ready, Progressing, Degraded, KeysReady, ScalingActive and Paused=False (unpaused)."""
    if h.problems:
        message = "; ".join(m for _, m in h.problems)
        degraded = Condition("Degraded", "True", h.problems[0][0], message)
    else:
        degraded = Condition("Degraded", "False", "AsExpected", "no problems")

    why: list[tuple[str, str]] = []
    if h.updated is None or h.updated < h.want:
        why.append(("RollingOut", "gateway pods are being created or updated"))
    if h.ready < h.want:
        why.append(("ScalingUp", f"{h.ready}/{h.want} gateway replicas ready"))
    if h.runtime_stale:
        why.append(
            (
                "RuntimeConfigPropagating",
                f"{h.runtime_stale} gateway(s) have not applied the runtime config yet",
            )
        )
    if h.changed:
        why.append(("Reconciling", ", ".join(h.changed)))
    if why:
        progressing = Condition("Progressing", "True", why[0][0], "; ".join(m for _, m in why))
    else:
        progressing = Condition("Progressing", "False", "Complete", "children match the spec")

    floor = max(1, h.ready_floor)
    if h.problems:
        ready = Condition("Ready", "False", degraded.reason, degraded.message)
    elif h.ready < floor:
        ready = Condition(
            "Ready", "False", "ReplicasNotReady", f"{h.ready}/{floor} gateway replicas ready"
        )
    elif h.keys_ready.status == "False":
        ready = Condition("Ready", "False", h.keys_ready.reason, h.keys_ready.message)
    else:
        ready = Condition("Ready", "True", "AllReplicasReady", f"{h.ready} gateway replicas ready")
    paused = Condition("Paused", "False", "Reconciling", "the operator manages this cluster")
    return [ready, progressing, degraded, h.keys_ready, h.scaling, paused]
