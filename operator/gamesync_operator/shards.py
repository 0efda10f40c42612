"""A sharded fleet seen whole, pure (DESIGN §5 `spec.gateway.shards`).

With K game-affine shards there are K gateway Deployments; status, the readiness of the
fleet and the scaler look at them as one (sums), rebalancing looks at each shard's pods on
their own, and a change of K leaves the previous layout's objects to remove once the new one
serves.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from gamesync_operator.names import SHARD_LABEL, shard_names

__all__ = [
    "busiest_shard",
    "by_shard",
    "fleet_deployment",
    "retired_names",
    "scale_shard",
    "serves",
    "shard_of",
]

_SUMMED = ("replicas", "readyReplicas", "updatedReplicas", "availableReplicas")


def fleet_deployment(deployments: Sequence[Mapping[str, Any] | None]) -> dict[str, Any] | None:
    """The shard Deployments as one: `spec.replicas` and the status counts summed.

    One Deployment (a fleet of one shard) is returned as it is; None if none exists yet.
    """
    present = [d for d in deployments if d is not None]
    if not present:
        return None
    if len(deployments) == 1:
        return dict(present[0])
    spec = sum(int((d.get("spec") or {}).get("replicas") or 0) for d in present)
    status = {
        key: sum(int((d.get("status") or {}).get(key) or 0) for d in present) for key in _SUMMED
    }
    return {"spec": {"replicas": spec}, "status": status}


def shard_of(pod: Mapping[str, Any], shards: int) -> int | None:
    """The pod's shard by its label; None without one of `0 … shards - 1` (another layout's)."""
    raw = ((pod.get("metadata") or {}).get("labels") or {}).get(SHARD_LABEL)
    if not isinstance(raw, str) or not (raw.isascii() and raw.isdigit()):
        return None
    return int(raw) if int(raw) < shards else None


def by_shard(
    pods: Iterable[Mapping[str, Any]], shards: int
) -> tuple[list[list[Mapping[str, Any]]], list[Mapping[str, Any]]]:
    """The pods of each shard, in shard order, and the strays that belong to no shard.

    With one shard every pod is its pod, labelled or not (the fleet of before). With K > 1 a
    pod without a current shard's label is a leftover of the previous layout while the count
    changes: its clients are not routed to any one shard, so it joins none.
    """
    groups: list[list[Mapping[str, Any]]] = [[] for _ in range(shards)]
    strays: list[Mapping[str, Any]] = []
    for pod in pods:
        shard = 0 if shards == 1 else shard_of(pod, shards)
        if shard is None:
            strays.append(pod)
        else:
            groups[shard].append(pod)
    return groups, strays


def busiest_shard(
    pods: Iterable[Mapping[str, Any]], connections: Mapping[str, int], shards: int
) -> int:
    """The most connections any one shard's pods hold (what each shard must be sized for).

    A pod of no current shard counts as shard 0's: a lone stray still sizes the fleet up.
    """
    per_shard = [0] * shards
    for pod in pods:
        shard = shard_of(pod, shards)
        per_shard[shard or 0] += connections.get((pod.get("metadata") or {}).get("name", ""), 0)
    return max(per_shard)


def scale_shard(
    deployments: Sequence[Mapping[str, Any] | None],
    pods: Iterable[Mapping[str, Any]],
    connections: Mapping[str, int],
) -> int | None:
    """The shard the scale subresource reports (`deployments` in shard order); None: one shard.

    The busiest by its pods' connections, then the largest, the lowest index on a tie. An HPA
    on the cluster sets `spec.gateway.replicas` (every shard's size) to its metric's ratio
    times the pods the selector finds: with this shard's pods that sizes every shard for the
    busiest one, as the operator's own scaler does; with every pod it would multiply by K.
    """
    count = len(deployments)
    if count == 1:
        return None
    load = [0] * count
    for pod in pods:
        shard = shard_of(pod, count)
        if shard is not None:
            load[shard] += connections.get((pod.get("metadata") or {}).get("name", ""), 0)
    size = [int(((d or {}).get("status") or {}).get("replicas") or 0) for d in deployments]
    return max(range(count), key=lambda i: (load[i], size[i], -i))


def retired_names(name: str, previous: int, current: int) -> list[str]:
    """The per-shard object names of the previous shard count that the current one lacks."""
    if previous == current:
        return []
    kept = set(shard_names(name, current))
    return [n for n in shard_names(name, previous) if n not in kept]


def serves(deployment: Mapping[str, Any] | None, shards: int) -> bool:
    """The Deployment's rollout to `shards` is done and a pod of it is ready.

    Its pod template says `GAMESYNC_SHARDS=shards` (no variable: one shard), the Deployment
    controller has seen its latest spec, every replica runs that template, and one is ready:
    only then may the previous layout's pods go (a kept shard still rolling from the old count
    would refuse the games that moved to it).
    """
    if deployment is None:
        return False
    meta, spec = deployment.get("metadata") or {}, deployment.get("spec") or {}
    status = deployment.get("status") or {}
    containers = ((spec.get("template") or {}).get("spec") or {}).get("containers") or [{}]
    env = {e.get("name"): e.get("value") for e in containers[0].get("env") or []}
    if env.get("GAMESYNC_SHARDS", "1") != str(shards):
        return False
    generation = int(meta.get("generation") or 0)
    if int(status.get("observedGeneration") or generation) < generation:
        return False
    want = int(spec.get("replicas") or 1)
    return (
        int(status.get("updatedReplicas") or 0) >= want
        and int(status.get("readyReplicas") or 0) >= 1
    )
