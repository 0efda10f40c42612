"""The gateway pods' NetworkPolicy, pure: who may reach the public and the internal port.

The public port (8000) is the websocket endpoint: open to `publicFrom` peers (the ingress or
Gateway API data plane), or to any source when none are given. The internal port (9000) serves
/metrics, /v1/stats and publish: open only to the operator's own pods, the monitoring namespace
and the game backend's pods; with none of those it admits nobody.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from gamesync_operator.names import INTERNAL_PORT, PUBLIC_PORT, labels, selector_labels
from gamesync_operator.spec import ClusterSpec

__all__ = ["OperatorPeer", "namespace_peer", "network_policy"]

#: Set by the API server on every namespace (Kubernetes >= 1.22): selects one namespace by name.
_NAMESPACE_NAME = "kubernetes.io/metadata.name"


@dataclass(frozen=True)
class OperatorPeer:
    """The operator's own pods: its namespace and the labels its pods carry."""

    namespace: str
    labels: Mapping[str, str] = field(default_factory=dict)

    def peer(self) -> dict[str, Any]:
        """A NetworkPolicyPeer selecting these pods (the whole namespace without labels)."""
        out: dict[str, Any] = namespace_peer(self.namespace)
        if self.labels:
            out["podSelector"] = {"matchLabels": dict(self.labels)}
        return out


def namespace_peer(namespace: str) -> dict[str, Any]:
    """A NetworkPolicyPeer admitting every pod of one namespace, chosen by its name."""
    return {"namespaceSelector": {"matchLabels": {_NAMESPACE_NAME: namespace}}}


def network_policy(spec: ClusterSpec, operator: OperatorPeer | None) -> dict[str, Any]:
    """The NetworkPolicy for this cluster's gateway pods (Ingress only; egress is left open)."""
    npol = spec.network_policy
    public: dict[str, Any] = {"ports": [{"protocol": "TCP", "port": PUBLIC_PORT}]}
    if npol.public_from:
        public["from"] = [dict(p) for p in npol.public_from]  # no `from` would mean: anyone
    internal_from: list[dict[str, Any]] = []
    if operator is not None:
        internal_from.append(operator.peer())
    if npol.monitoring_namespace:
        internal_from.append(namespace_peer(npol.monitoring_namespace))
    if npol.backend_selector:
        # A podSelector alone selects pods of the policy's own namespace: the backend's.
        internal_from.append({"podSelector": dict(npol.backend_selector)})
    rules = [public]
    if internal_from:  # never a rule without `from`: that would open the port to anyone
        rules.append({"ports": [{"protocol": "TCP", "port": INTERNAL_PORT}], "from": internal_from})
    return {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "NetworkPolicy",
        "metadata": {"name": spec.name, "namespace": spec.namespace, "labels": labels(spec.name)},
        "spec": {
            "podSelector": {"matchLabels": selector_labels(spec.name)},
            "policyTypes": ["Ingress"],
            "ingress": rules,
        },
    }
