"""kopf glue: watch events say which GameSyncCluster needs a pass; the controller runs it.

- A GameSyncCluster's own events ask for a pass when its spec, labels or annotations change
  (`triggers.essence`), and forget it when it is gone.
- Its children's events (by the `managed-by` label, then the controller owner reference) ask
  for a pass shortly after, so a deleted Service or a hand-edited Deployment is repaired at
  once rather than at the next resync.
- No handler needs a finalizer, so kopf adds none, and removes the one earlier versions put
  on (`gamesync.nommie.dev/finalizer`) the first time it sees such a cluster: deleting a
  GameSyncCluster never waits for the operator. Children go by garbage collection.
"""

from __future__ import annotations

import logging
from typing import Any

import kopf

from gamesync_operator.config import PREFIX, OperatorConfig
from gamesync_operator.controller import Controller
from gamesync_operator.crd import GROUP, PLURAL, VERSION
from gamesync_operator.names import MANAGED_BY
from gamesync_operator.triggers import ClusterKey, essence, owner_of

__all__ = ["WATCHED_CHILDREN", "configure", "register"]

log = logging.getLogger(__name__)

#: Children whose changes ask for a pass: (group, version, plural). Not Secrets and ConfigMaps:
#: watching them needs list/watch on every Secret/ConfigMap in scope (a wide read grant and a
#: heavy stream), and losing one is no outage (gateways keep the keys and runtime config they
#: have): the resync repairs them.
WATCHED_CHILDREN = (
    ("apps", "v1", "deployments"),
    ("", "v1", "services"),
    ("policy", "v1", "poddisruptionbudgets"),
    ("networking.k8s.io", "v1", "ingresses"),
    ("networking.k8s.io", "v1", "networkpolicies"),
    ("autoscaling", "v2", "horizontalpodautoscalers"),
    ("gateway.networking.k8s.io", "v1", "httproutes"),
    ("keda.sh", "v1alpha1", "scaledobjects"),
    ("monitoring.coreos.com", "v1", "podmonitors"),
)


def configure(settings: Any, config: OperatorConfig) -> None:
    """kopf settings: our own prefixes under gamesync.nommie.dev, quiet event posting."""
    # Named so that kopf recognises (and removes) the finalizer earlier versions added.
    settings.persistence.finalizer = f"{PREFIX}/finalizer"
    settings.persistence.progress_storage = kopf.AnnotationsProgressStorage(prefix=PREFIX)
    settings.persistence.diffbase_storage = kopf.AnnotationsDiffBaseStorage(
        prefix=PREFIX, key="last-handled-configuration"
    )
    # Only warnings from kopf's own logs become Events; the passes post theirs.
    settings.posting.level = logging.WARNING
    # No cluster-wide list/watch of namespaces and CRDs (least privilege): the CRD is found
    # once at start-up through discovery. Only namespace globs need kopf to follow namespaces.
    settings.scanning.disabled = not config.scan_namespaces
    # Stopping: the handlers only queue work, so kopf's per-object workers end at once.
    settings.queueing.exit_timeout = 0.2


def register(registry: Any, config: OperatorConfig, *, peering: bool = False) -> None:
    """Register the handlers into `registry` (one registry per operator or test).

    `peering`: kopf pauses a standby operator's watches but not its own tasks, so under peering
    a kopf timer (which pauses with the watches) asks for the resyncs instead of the work
    queue. Timers need a finalizer: only under peering does a GameSyncCluster get one.
    """
    holder: dict[str, Controller] = {}
    seen: dict[ClusterKey, str] = {}

    @kopf.on.startup(registry=registry)
    async def start(settings: Any, **_: Any) -> None:
        configure(settings, config)
        controller = Controller(config, periodic=not peering)
        await controller.start()
        holder["controller"] = controller

    @kopf.on.cleanup(registry=registry)
    async def stop(**_: Any) -> None:
        controller = holder.pop("controller", None)
        if controller is not None:
            await controller.stop()

    @kopf.on.event(GROUP, VERSION, PLURAL, registry=registry, id="cluster")
    async def cluster_changed(event: Any, body: Any, **_: Any) -> None:
        controller = holder.get("controller")
        if controller is None:
            return  # starting or stopping
        key = ClusterKey.of(body)
        if event.get("type") == "DELETED":
            seen.pop(key, None)
            controller.forget(key)
            return
        digest = essence(body)
        if seen.get(key) != digest:  # its own status writes are no reason for a pass
            seen[key] = digest
            controller.request(key)

    for group, version, plural in WATCHED_CHILDREN:

        @kopf.on.event(
            group=group,
            version=version,
            plural=plural,
            registry=registry,
            id=f"child-{plural}",
            labels={"app.kubernetes.io/managed-by": MANAGED_BY},
        )
        async def child_changed(body: Any, **_: Any) -> None:
            controller = holder.get("controller")
            key = owner_of(body)
            if controller is not None and key is not None:
                controller.request(key, config.child_debounce)

    if peering:

        @kopf.timer(
            GROUP, VERSION, PLURAL, registry=registry, id="resync", interval=config.interval
        )
        async def resync(body: Any, **_: Any) -> None:
            controller = holder.get("controller")
            if controller is not None:
                controller.request(ClusterKey.of(body))
