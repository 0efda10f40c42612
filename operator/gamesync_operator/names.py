"""The names, labels and ports that tie a GameSyncCluster's children together (pure)."""

from __future__ import annotations

__all__ = [
    "INTERNAL_PORT",
    "MANAGED_BY",
    "PUBLIC_PORT",
    "SHARD_LABEL",
    "internal_service_name",
    "label_selector",
    "labels",
    "selector_labels",
    "shard_labels",
    "shard_name",
    "shard_names",
]

#: The gateway's public listener: websockets and probes (DESIGN §2).
PUBLIC_PORT = 8000
#: The gateway's internal listener: /metrics, /v1/stats, publish; never exposed publicly.
INTERNAL_PORT = 9000
MANAGED_BY = "gamesync-operator"
#: The label carrying a gateway pod's shard index, with `spec.gateway.shards` above 1.
SHARD_LABEL = "gamesync.nommie.dev/shard"


def selector_labels(name: str) -> dict[str, str]:
    """Labels that select this cluster's gateway pods (immutable in a Deployment)."""
    return {"app.kubernetes.io/name": "gamesync-gateway", "app.kubernetes.io/instance": name}


def label_selector(name: str, shard: int | None = None) -> str:
    """shard_labels as a selector string: every gateway pod (`status.labelSelector`), or one
    shard's (`status.shardSelector`, the scale subresource's)."""
    return ",".join(f"{k}={v}" for k, v in sorted(shard_labels(name, shard).items()))


def labels(name: str) -> dict[str, str]:
    """Every label a child and a gateway pod carries."""
    return {
        **selector_labels(name),
        "app.kubernetes.io/component": "gateway",
        "app.kubernetes.io/part-of": "gamesync",
        "app.kubernetes.io/managed-by": MANAGED_BY,
    }


def internal_service_name(name: str) -> str:
    """The ClusterIP Service of the internal port, apart from the public one (`name`)."""
    return f"{name}-internal"


def shard_name(name: str, shard: int | None) -> str:
    """A shard's Deployment, Service, HPA and ScaledObject; the fleet's own name for None."""
    return name if shard is None else f"{name}-s{shard}"


def shard_names(name: str, shards: int) -> list[str]:
    """The names of a fleet's shards: `[name]` for one shard (today's objects, unchanged)."""
    return [name] if shards == 1 else [shard_name(name, i) for i in range(shards)]


def shard_labels(name: str, shard: int | None) -> dict[str, str]:
    """selector_labels narrowed to one shard's pods (all of them for None)."""
    if shard is None:
        return selector_labels(name)
    return {**selector_labels(name), SHARD_LABEL: str(shard)}
