"""Status conditions in the standard metav1.Condition shape, decided from observations (pure).

The conditions, as the ecosystem uses them (Deployment's Available/Progressing, OLM's
Available/Progressing/Degraded, Gateway API's Accepted):

- `Ready`: the fleet serves and the operator has confirmed it: enough ready replicas, every
  ready gateway answered `/v1/stats`, every ready gateway verifies with the active key, and the
  public Service (and the route, when there is one) exists. Problems elsewhere (a refused spec,
  a field conflict) do not make a serving fleet look down.
- `Accepted`: whether the operator acts on the current spec (False: an invalid spec, an image
  outside the allow-list, a name someone else owns; what was running keeps running).
- `Progressing`: a change is on its way (rollout, scaling, config propagation, rebalancing).
- `Degraded`: the operator cannot bring the cluster to the spec; the reason names the first
  problem, the message lists all.
- `KeysReady`, `ScalingActive`, `Monitoring`, `Paused`: one concern each.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from gamesync_operator.signing_secrets import format_time

__all__ = [
    "CONDITION_TYPES",
    "Condition",
    "Fleet",
    "Health",
    "cluster_conditions",
    "merge_conditions",
    "ready_condition",
    "refused_conditions",
]

CONDITION_TYPES = (
    "Ready",
    "Accepted",
    "Progressing",
    "Degraded",
    "KeysReady",
    "ScalingActive",
    "Monitoring",
    "Paused",
)


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
class Fleet:
    """What serves right now, as observed, whatever the spec says."""

    floor: int  # fewer ready replicas than this is not serving (at least 1)
    ready: int  # ready gateway pods
    unanswered: int  # ready gateway pods that did not answer /v1/stats
    missing: tuple[str, ...] = ()  # exposure objects that do not exist ("Service/arena")


def ready_condition(fleet: Fleet, keys_ready: Condition | None) -> Condition:
    """`Ready`: serving and confirmed; the reason names the first thing missing."""
    floor = max(1, fleet.floor)
    if fleet.ready < floor:
        return Condition(
            "Ready", "False", "ReplicasNotReady", f"{fleet.ready}/{floor} gateway replicas ready"
        )
    if fleet.unanswered:
        return Condition(
            "Ready",
            "False",
            "GatewaysUnreachable",
            f"{fleet.unanswered}/{fleet.ready} ready gateways did not answer /v1/stats on the "
            "internal port: their keys and runtime config cannot be confirmed",
        )
    if keys_ready is None or keys_ready.status != "True":
        reason = keys_ready.reason if keys_ready is not None else "KeysUnknown"
        message = keys_ready.message if keys_ready is not None else "keys not confirmed yet"
        return Condition("Ready", "False", reason or "KeysNotConfirmed", message)
    if fleet.missing:
        return Condition(
            "Ready",
            "False",
            "NotExposed",
            f"{', '.join(fleet.missing)} missing: clients cannot reach the gateways",
        )
    return Condition(
        "Ready",
        "True",
        "Serving",
        f"{fleet.ready} gateway replicas ready, every one confirmed (keys, stats)",
    )


@dataclass(frozen=True)
class Health:
    """What a pass observed and did, as far as the conditions care."""

    want: int  # replicas the cluster should have now
    fleet: Fleet
    updated: int | None  # the Deployment's updatedReplicas; None while it does not exist
    keys_ready: Condition
    scaling: Condition  # ScalingActive: whether replicas were decided from complete data
    monitoring: Condition
    runtime_stale: int  # ready gateways that have not applied the current runtime config
    problems: Sequence[tuple[str, str]] = ()  # (reason, message), first one names Degraded
    changed: Sequence[str] = ()  # writes this pass made
    rebalancing: str | None = None  # what the rebalancer asked of the gateways this pass


def _degraded(problems: Sequence[tuple[str, str]]) -> Condition:
    if problems:
        message = "; ".join(m for _, m in problems)
        return Condition("Degraded", "True", problems[0][0], message)
    return Condition("Degraded", "False", "AsExpected", "no problems")


def cluster_conditions(h: Health) -> list[Condition]:
    """Every condition of a pass that acted on an accepted spec (Paused=False)."""
    why: list[tuple[str, str]] = []
    if h.updated is None or h.updated < h.want:
        why.append(("RollingOut", "gateway pods are being created or updated"))
    if h.fleet.ready < h.want:
        why.append(("ScalingUp", f"{h.fleet.ready}/{h.want} gateway replicas ready"))
    if h.runtime_stale:
        why.append(
            (
                "RuntimeConfigPropagating",
                f"{h.runtime_stale} gateway(s) have not applied the runtime config yet",
            )
        )
    if h.rebalancing:
        why.append(("Rebalancing", h.rebalancing))
    if h.changed:
        why.append(("Reconciling", ", ".join(h.changed)))
    if why:
        progressing = Condition("Progressing", "True", why[0][0], "; ".join(m for _, m in why))
    else:
        progressing = Condition("Progressing", "False", "Complete", "children match the spec")
    return [
        ready_condition(h.fleet, h.keys_ready),
        Condition("Accepted", "True", "Valid", "the spec is valid and applied"),
        progressing,
        _degraded(h.problems),
        h.keys_ready,
        h.scaling,
        h.monitoring,
        Condition("Paused", "False", "Reconciling", "the operator manages this cluster"),
    ]


def refused_conditions(
    fleet: Fleet, keys_ready: Condition | None, problems: Sequence[tuple[str, str]]
) -> list[Condition]:
    """A pass that changes nothing (the first problem names why): what runs keeps serving."""
    reason, message = problems[0]
    return [
        ready_condition(fleet, keys_ready),
        Condition("Accepted", "False", reason, message),
        Condition("Progressing", "False", reason, "no change until this is resolved"),
        _degraded(problems),
    ]
