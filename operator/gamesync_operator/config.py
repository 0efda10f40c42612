"""Operator settings and injectable dependencies, fixed once at start-up and passed down."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from gamesync.keys import generate_key
from gamesync_operator.kube import Configurator, load_configuration
from gamesync_operator.metrics import OperatorMetrics
from gamesync_operator.network import OperatorPeer
from gamesync_operator.policy import ImagePolicy
from gamesync_operator.stats import StatsResolver, pod_base_url

__all__ = ["DELETION_COST", "PREFIX", "ROTATE_ANNOTATION", "OperatorConfig", "utcnow"]

PREFIX = "gamesync.nommie.dev"
ROTATE_ANNOTATION = f"{PREFIX}/rotate-keys"
DELETION_COST = "controller.kubernetes.io/pod-deletion-cost"


def utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


@dataclass(frozen=True)
class OperatorConfig:
    """How the operator runs; tests swap the clock, the stats resolver and the API server."""

    # Level-based resync: the timer compares actual children with desired ones this often.
    interval: float = 30.0
    # Delay before a failed reconciliation is retried.
    retry_delay: float = 15.0
    # A child's change asks for a pass this much later, so a burst of changes is one pass.
    child_debounce: float = 1.0
    # Passes that may run at once (over different clusters; one cluster never has two).
    workers: int = 4
    # On shutdown, passes in progress get this long to end before they are cancelled.
    shutdown_grace: float = 0.25
    # Per-request timeout for a gateway's /v1/stats; a slow pod must not stall the fleet.
    stats_timeout: float = 2.0
    # Per-request timeout for the Kubernetes API.
    api_timeout: float = 10.0
    # Which gateway images a GameSyncCluster may run (empty: any; DESIGN §5 "security model").
    images: ImagePolicy = field(default_factory=ImagePolicy)
    # The operator's own pods, so that gateway NetworkPolicies let it read /v1/stats.
    peer: OperatorPeer | None = None
    # kopf follows namespaces and CRDs (cluster-wide list/watch) only for namespace globs.
    scan_namespaces: bool = False
    resolve_stats: StatsResolver = pod_base_url
    clock: Callable[[], dt.datetime] = utcnow
    generate_key: Callable[[str], tuple[dict[str, Any], dict[str, Any]]] = field(
        default=lambda alg: generate_key(alg)
    )
    configure: Configurator = load_configuration
    metrics: OperatorMetrics = field(default_factory=OperatorMetrics)
