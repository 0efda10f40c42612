"""The operator's workers: take due clusters off the work queue, run a pass, schedule the next.

kopf's watches only say which cluster needs a pass (`request`); the passes run here, at most
one per cluster at a time and `config.workers` at once. After a pass the cluster is due again
after `config.interval` (the backstop that repairs what no event reported) or, when the pass
failed, after `config.retry_delay`. No kopf timer: kopf puts a finalizer on every object a
timer runs for, and that finalizer kept a GameSyncCluster `Terminating` while the operator was
down.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging

from gamesync_operator.config import OperatorConfig
from gamesync_operator.errors import ApiError
from gamesync_operator.events import Event, event_body
from gamesync_operator.reconcile import PassReport, Reconciler
from gamesync_operator.triggers import ClusterKey
from gamesync_operator.workqueue import QueueClosed, WorkQueue

__all__ = ["Controller"]

log = logging.getLogger("gamesync_operator")


class Controller:
    """Runs passes for the clusters kopf tells it about; `stop` ends them in order."""

    def __init__(self, config: OperatorConfig, *, periodic: bool = True) -> None:
        self.config = config
        self.reconciler = Reconciler(config)
        self.queue: WorkQueue[ClusterKey] = WorkQueue()
        #: False under kopf peering: a kopf timer (paused with the operator) asks for resyncs.
        self.periodic = periodic
        self._workers: list[asyncio.Task[None]] = []
        self._problems: dict[ClusterKey, list[tuple[str, str]]] = {}
        self._stopping = False
        self._event_seq = itertools.count()  # tells apart Events made at the same instant

    async def start(self) -> None:
        """Connect the API client, then start the workers."""
        try:
            await self.reconciler.kube.connect()
        except ApiError as exc:  # no credentials yet: the first pass tries again
            log.warning("the Kubernetes API client is not ready: %s", exc)
        loop = asyncio.get_running_loop()
        for n in range(self.config.workers):
            task = loop.create_task(self._work(), name=f"gamesync-worker-{n}")
            task.add_done_callback(self._worker_ended)
            self._workers.append(task)

    def request(self, key: ClusterKey, delay: float = 0.0) -> None:
        """Ask for a pass of `key` within `delay` seconds."""
        if not self._stopping:
            self.queue.add(key, delay)

    def forget(self, key: ClusterKey) -> None:
        """The cluster was deleted: no more passes, no more series."""
        self.queue.forget(key)
        self._problems.pop(key, None)
        self.reconciler.forget(key.uid)
        self.config.metrics.forget(key.namespace, key.name)

    async def stop(self) -> None:
        """Hand out no more passes, give running ones `shutdown_grace` to end, then close.

        A pass cut short is safe: every write stands on its own and the next pass (of this
        operator or its successor) starts again from what exists.
        """
        self._stopping = True
        self.queue.close()
        running = [t for t in self._workers if not t.done()]
        if running:
            _, late = await asyncio.wait(running, timeout=self.config.shutdown_grace)
            for task in late:
                task.cancel()
            await asyncio.gather(*running, return_exceptions=True)
        await self.reconciler.close()

    def _worker_ended(self, task: asyncio.Task[None]) -> None:
        if not task.cancelled() and task.exception() is not None and not self._stopping:
            # A worker only ends by a bug: say so and start another in its place.
            log.error("worker %s died", task.get_name(), exc_info=task.exception())
            self._workers.remove(task)
            replacement = asyncio.get_running_loop().create_task(self._work(), name=task.get_name())
            replacement.add_done_callback(self._worker_ended)
            self._workers.append(replacement)

    async def _work(self) -> None:
        while True:
            try:
                key = await self.queue.get()
            except QueueClosed:
                return
            try:
                await self._run(key)
            finally:
                self.queue.done(key)

    async def _run(self, key: ClusterKey) -> None:
        events: list[Event] = []
        next_in: float | None = self.config.interval
        try:
            report = await self.reconciler.reconcile(
                key, lambda type_, reason, message: events.append(Event(type_, reason, message))
            )
        except asyncio.CancelledError:
            self._log_events(key, events)  # stopping: said in the log, not posted
            raise
        except ApiError as exc:
            # Conflicts, an unreachable API, missing RBAC: soon again; the next pass re-reads all.
            log.warning("%s: pass failed, retrying in %.0fs: %s", key, self.config.retry_delay, exc)
            next_in = self.config.retry_delay
        except Exception:
            log.exception("%s: pass failed unexpectedly", key)
            next_in = self.config.retry_delay
        else:
            if report.gone:
                self.forget(key)
                next_in = None
            self._log(key, report)
        self._log_events(key, events)
        await self._post(key, events)
        if next_in is not None and self.periodic:
            self.request(key, next_in)

    def _log(self, key: ClusterKey, report: PassReport) -> None:
        """Changes at INFO; problems at WARNING when they appear or change, not every pass."""
        for change in report.changed:
            log.info("%s: %s", key, change)
        if report.problems != self._problems.get(key, []):
            for reason, message in report.problems:
                log.warning("%s: %s: %s", key, reason, message)
            if not report.problems and key in self._problems:
                log.info("%s: no problems left", key)
        if not report.gone:
            self._problems[key] = list(report.problems)

    @staticmethod
    def _log_events(key: ClusterKey, events: list[Event]) -> None:
        for event in events:
            level = logging.WARNING if event.type == "Warning" else logging.INFO
            log.log(level, "%s: %s: %s", key, event.reason, event.message)

    async def _post(self, key: ClusterKey, events: list[Event]) -> None:
        """Post the pass's Events; best effort (an Event is never worth a retry)."""
        now = self.config.clock()
        for event in events:
            body = event_body(key, event, now, next(self._event_seq))
            with contextlib.suppress(ApiError):
                await self.reconciler.kube.post_event(body)
