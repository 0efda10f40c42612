"""The names, labels and ports that tie a GameSyncCluster's children together (pure)."""

from __future__ import annotations

__all__ = [
    "INTERNAL_PORT",
    "MANAGED_BY",
    "PUBLIC_PORT",
    "internal_service_name",
    "label_selector",
    "labels",
    "selector_labels",
]

#: The gateway's public listener: websockets and probes (DESIGN §2).
PUBLIC_PORT = 8000
#: The gateway's internal listener: /metrics, /v1/stats, publish; never exposed publicly.
INTERNAL_PORT = 9000
MANAGED_BY = "gamesync-operator"


def selector_labels(name: str) -> dict[str, str]:
    """Labels that select this cluster's gateway pods (immutable in a Deployment)."""
    return {"app.kubernetes.io/name": "gamesync-gateway", "app.kubernetes.io/instance": name}


def label_selector(name: str) -> str:
    """selector_labels as a selector string (status.labelSelector, for the scale subresource)."""
    return ",".join(f"{k}={v}" for k, v in sorted(selector_labels(name).items()))


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
