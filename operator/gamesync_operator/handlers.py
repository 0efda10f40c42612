"""kopf handlers: thin glue from kopf's events and timers to `Reconciler.reconcile`."""

from __future__ import annotations

import logging
from typing import Any

import kopf

from gamesync_operator.config import PREFIX, OperatorConfig
from gamesync_operator.crd import GROUP, PLURAL, VERSION
from gamesync_operator.errors import ApiError
from gamesync_operator.reconcile import Reconciler

__all__ = ["configure", "register"]

log = logging.getLogger(__name__)


def configure(settings: Any, config: OperatorConfig) -> None:
    """kopf settings: our own prefixes under gamesync.nommie.dev, quiet event posting."""
    settings.persistence.finalizer = f"{PREFIX}/finalizer"
    settings.persistence.progress_storage = kopf.AnnotationsProgressStorage(prefix=PREFIX)
    settings.persistence.diffbase_storage = kopf.AnnotationsDiffBaseStorage(
        prefix=PREFIX, key="last-handled-configuration"
    )
    # Only warnings from logs become Events; rotations and scaling post their own.
    settings.posting.level = logging.WARNING
    # On exit, let a pass that is half-way through its writes finish rather than orphan it.
    settings.background.instant_exit_timeout = 5.0
    # No cluster-wide list/watch of namespaces and CRDs (least privilege): the CRD is found
    # once at start-up through discovery. Only namespace globs need kopf to follow namespaces.
    settings.scanning.disabled = not config.scan_namespaces


def register(registry: Any, config: OperatorConfig) -> None:
    """Register the GameSyncCluster handlers into `registry` (one registry per operator/test)."""
    holder: dict[str, Reconciler] = {}

    @kopf.on.startup(registry=registry)
    async def start(settings: Any, **_: Any) -> None:
        configure(settings, config)
        holder["reconciler"] = Reconciler(config)

    @kopf.on.cleanup(registry=registry)
    async def stop(**_: Any) -> None:
        reconciler = holder.pop("reconciler", None)
        if reconciler is not None:
            await reconciler.close()

    async def run(body: Any, logger: Any) -> None:
        def emit(type_: str, reason: str, message: str) -> None:
            kopf.event(body, type=type_, reason=reason, message=message)
            logger.info("%s %s: %s", type_, reason, message)

        reconciler = holder.get("reconciler")
        if reconciler is None:
            return  # the operator is stopping: nothing to reconcile with
        try:
            report = await reconciler.reconcile(body, emit)
        except ApiError as exc:
            # Conflicts, an unreachable API, missing RBAC: retry soon; the next pass re-reads all.
            raise kopf.TemporaryError(str(exc), delay=config.retry_delay) from exc
        for change in report.changed:
            logger.info("%s", change)
        for reason, message in report.problems:
            logger.warning("%s: %s", reason, message)

    @kopf.on.resume(GROUP, VERSION, PLURAL, registry=registry, id="reconcile-on-resume")
    @kopf.on.create(GROUP, VERSION, PLURAL, registry=registry, id="reconcile-on-create")
    @kopf.on.update(GROUP, VERSION, PLURAL, registry=registry, id="reconcile-on-update")
    async def changed(body: Any, logger: Any, **_: Any) -> None:
        await run(body, logger)

    @kopf.timer(
        GROUP,
        VERSION,
        PLURAL,
        registry=registry,
        id="resync",
        interval=config.interval,
        backoff=config.retry_delay,
    )
    async def resync(body: Any, logger: Any, **_: Any) -> None:
        await run(body, logger)

    @kopf.on.delete(GROUP, VERSION, PLURAL, registry=registry, optional=True, id="forget")
    async def forget(body: Any, **_: Any) -> None:
        reconciler = holder.get("reconciler")
        if reconciler is not None:
            reconciler.forget(body["metadata"]["uid"])
        config.metrics.forget(body["metadata"]["namespace"], body["metadata"]["name"])
