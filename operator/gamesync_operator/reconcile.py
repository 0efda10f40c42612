"""One reconciliation pass for a GameSyncCluster: observe, let pure functions decide, write.

Level-based and idempotent: every pass reads what exists, so it can run after a crash, twice
in a row (KMock replays watches) or concurrently with a human editing children.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import logging
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

import httpx

from gamesync_operator import desired as desired_mod
from gamesync_operator import ownership, rebalance, rotation, scaling, shards, signing_secrets
from gamesync_operator.config import DELETION_COST, ROTATE_ANNOTATION, OperatorConfig
from gamesync_operator.errors import ApiError, SpecError, StatsError
from gamesync_operator.kube import CLUSTERS as _CLUSTERS
from gamesync_operator.kube import (
    DEPLOYMENTS,
    HPAS,
    HTTPROUTES,
    INGRESSES,
    NETWORKPOLICIES,
    PODMONITORS,
    PODS,
    SCALEDOBJECTS,
    SECRETS,
    SERVICES,
    ApplyConflict,
    Kube,
    Resource,
    resource_of,
)
from gamesync_operator.names import PUBLIC_PORT, label_selector, selector_labels, shard_names
from gamesync_operator.spec import ClusterSpec, parse_spec
from gamesync_operator.stats import PodStats, gather_stats, request_shed
from gamesync_operator.status import (
    Condition,
    Fleet,
    Health,
    cluster_conditions,
    merge_conditions,
    refused_conditions,
)
from gamesync_operator.triggers import ClusterKey

__all__ = ["PassReport", "Reconciler", "contains"]

log = logging.getLogger(__name__)

#: Posts a Kubernetes Event about the cluster: (type, reason, message).
EventSink = Callable[[str, str, str], None]


def contains(actual: Any, wanted: Any) -> bool:
    """Whether `actual` already holds everything `wanted` says (extra fields are the server's).

    Dicts compare key by key, lists element by element with equal length, scalars by value.
    """
    if isinstance(wanted, Mapping):
        return isinstance(actual, Mapping) and all(
            k in actual and contains(actual[k], v) for k, v in wanted.items()
        )
    if isinstance(wanted, list):
        return (
            isinstance(actual, list)
            and len(actual) == len(wanted)
            and all(contains(a, w) for a, w in zip(actual, wanted, strict=True))
        )
    if isinstance(actual, bool) or isinstance(wanted, bool):
        return actual is wanted  # True == 1 in Python, not in JSON
    if actual == wanted:
        return True
    # The API server canonicalises quantities ("1000" comes back as "1k", "0.5" as "500m").
    a, w = _quantity(actual), _quantity(wanted)
    return a is not None and a == w


_QUANTITY = re.compile(
    r"^([+-]?[0-9]+(?:\.[0-9]*)?|[+-]?\.[0-9]+)([eE][+-]?[0-9]+|Ki|Mi|Gi|Ti|Pi|Ei|m|k|M|G|T|P|E)?$"
)
_SUFFIX = {
    "m": Decimal("0.001"),
    "k": Decimal(10) ** 3,
    "M": Decimal(10) ** 6,
    "G": Decimal(10) ** 9,
    "T": Decimal(10) ** 12,
    "P": Decimal(10) ** 15,
    "E": Decimal(10) ** 18,
    "Ki": Decimal(2) ** 10,
    "Mi": Decimal(2) ** 20,
    "Gi": Decimal(2) ** 30,
    "Ti": Decimal(2) ** 40,
    "Pi": Decimal(2) ** 50,
    "Ei": Decimal(2) ** 60,
}


def _quantity(value: Any) -> Decimal | None:
    """A Kubernetes quantity's value, or None if `value` is not one."""
    if isinstance(value, bool) or not isinstance(value, int | str):
        return None
    match = _QUANTITY.match(str(value))
    if match is None:
        return None
    number, suffix = Decimal(match.group(1)), match.group(2)
    if suffix is None:
        return number
    if suffix[0] in "eE":
        return number * Decimal(10) ** int(suffix[1:])
    return number * _SUFFIX[suffix]


def _pruned(value: Any) -> Any:
    """`value` without None-valued keys (a merge patch deletes those), for comparisons."""
    if isinstance(value, Mapping):
        return {k: _pruned(v) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [_pruned(v) for v in value]
    return value


def _is_running(pod: Mapping[str, Any]) -> bool:
    """A pod that may hold sockets: running, ready or not (draining ones too)."""
    return (pod.get("status") or {}).get("phase") == "Running"


def _is_ready(pod: Mapping[str, Any]) -> bool:
    if pod.get("metadata", {}).get("deletionTimestamp"):
        return False
    conditions = (pod.get("status") or {}).get("conditions") or []
    return any(c.get("type") == "Ready" and c.get("status") == "True" for c in conditions)


def _previous(status: Mapping[str, Any], type_: str) -> Condition | None:
    """A condition as the last pass wrote it, or None."""
    for c in status.get("conditions") or []:
        if isinstance(c, Mapping) and c.get("type") == type_:
            return Condition(
                type_, str(c.get("status")), str(c.get("reason")), str(c.get("message"))
            )
    return None


@dataclass
class PassReport:
    """What a pass did, for logs and tests."""

    changed: list[str] = field(default_factory=list)
    problems: list[tuple[str, str]] = field(default_factory=list)
    gone: bool = False  # the cluster was deleted (or replaced by one of the same name)


#: Problems that stop a pass before it changes anything (Accepted=False, with that reason).
_BLOCKING = ("NameConflict", "ImageNotAllowed")
#: APIs a cluster may not serve (CRDs of other projects): absent is a state, not a failure.
_OPTIONAL = (HTTPROUTES, SCALEDOBJECTS, PODMONITORS)
#: Problems that are announced with a Warning Event (once, when they appear).
_ANNOUNCED = frozenset({*_BLOCKING, "FieldConflict"})


@dataclass(frozen=True)
class _Stats:
    """What the gateways reported this pass."""

    running: list[dict[str, Any]]
    answered: dict[str, PodStats]
    ready: list[str]  # running pods that are ready (and not being deleted)
    ready_kids: tuple[frozenset[str], ...] | None  # None: some ready pod did not answer

    @property
    def unanswered_ready(self) -> int:
        return sum(1 for n in self.ready if n not in self.answered)

    @property
    def complete(self) -> bool:
        return len(self.answered) == len(self.running)

    @property
    def total(self) -> int | None:
        """Connections over every running pod; a lower bound unless complete; None: no data."""
        if not self.answered and self.running:
            return None
        return sum(s.connections for s in self.answered.values())


class Reconciler:
    """Holds the clients; `reconcile(key, emit)` runs one pass for one GameSyncCluster.

    Passes for one cluster never overlap: the controller's work queue hands each key to one
    worker at a time.
    """

    def __init__(self, config: OperatorConfig) -> None:
        self.config = config
        self.kube = Kube(config.configure, timeout=config.api_timeout)
        self.http = httpx.AsyncClient(timeout=config.stats_timeout, trust_env=False)
        self._announced: dict[str, set[tuple[str, str]]] = {}

    async def close(self) -> None:
        """Close the clients (after every pass ended: the controller stops them first)."""
        await self.kube.close()
        await self.http.aclose()

    def forget(self, uid: str) -> None:
        self._announced.pop(uid, None)

    async def reconcile(self, key: ClusterKey, emit: EventSink) -> PassReport:
        """One pass over the cluster as it is now; `gone` if it was deleted or replaced."""
        fresh = await self.kube.get(_CLUSTERS, key.namespace, key.name)
        meta = (fresh or {}).get("metadata") or {}
        if fresh is None or meta.get("uid") != key.uid or meta.get("deletionTimestamp"):
            return PassReport(gone=True)
        try:
            report = await self._pass(fresh, emit)
        except ApiError as exc:
            self.config.metrics.passes.labels("api_error").inc()
            await self._report_api_error(fresh, exc)
            raise
        self._announce(key.uid, report, emit)
        self.config.metrics.passes.labels("problems" if report.problems else "ok").inc()
        return report

    def _announce(self, uid: str, report: PassReport, emit: EventSink) -> None:
        """A Warning Event for each conflict or refusal when it first appears, not every pass."""
        now = {p for p in report.problems if p[0] in _ANNOUNCED}
        for reason, message in sorted(now - self._announced.get(uid, set())):
            emit("Warning", reason, message)
        self._announced[uid] = now

    async def _report_api_error(self, body: Mapping[str, Any], exc: ApiError) -> None:
        """Say in status why a pass failed (RBAC, an unreachable API); best effort."""
        reason = {0: "ApiUnreachable", 403: "Forbidden", 409: "Conflict"}.get(
            exc.status, "ApiError"
        )
        if isinstance(exc, ApplyConflict):
            reason = "FieldConflict"
        message = f"the Kubernetes API refused a request: {exc}"
        conditions = [
            # The pass could not observe everything: whether the fleet serves is not known.
            Condition("Ready", "Unknown", reason, message),
            Condition("Degraded", "True", reason, message),
        ]
        generation = body["metadata"].get("generation")
        with contextlib.suppress(ApiError):
            await self._write_status(body, {}, conditions, generation, self.config.clock())

    async def _refuse(
        self,
        body: Mapping[str, Any],
        problems: list[tuple[str, str]],
        fields: Mapping[str, Any],
        fleet: Fleet,
        now: dt.datetime,
    ) -> None:
        """Status for a pass that changes nothing: Accepted=False; what runs keeps serving."""
        status: Mapping[str, Any] = body.get("status") or {}
        conditions = refused_conditions(fleet, _previous(status, "KeysReady"), problems)
        await self._write_status(body, fields, conditions, body["metadata"].get("generation"), now)

    def _fleet(
        self,
        deployment: Mapping[str, Any] | None,
        stats: _Stats,
        floor: int | None = None,
        missing: tuple[str, ...] = (),
    ) -> Fleet:
        """What serves: `deployment` is ours (or None); `floor` defaults to its replicas."""
        if floor is None:
            floor = int(((deployment or {}).get("spec") or {}).get("replicas") or 0)
        ready = int(((deployment or {}).get("status") or {}).get("readyReplicas") or 0)
        # A shedding pod reports unready (so newcomers go elsewhere) but still serves its own.
        ready += sum(1 for n, s in stats.answered.items() if s.shedding and n not in stats.ready)
        return Fleet(floor=floor, ready=ready, unanswered=stats.unanswered_ready, missing=missing)

    async def _pass(self, body: Mapping[str, Any], emit: EventSink) -> PassReport:
        meta = body["metadata"]
        name, namespace, uid = meta["name"], meta["namespace"], meta["uid"]
        generation = meta.get("generation")
        status: Mapping[str, Any] = body.get("status") or {}
        now = self.config.clock()
        report = PassReport()

        try:
            spec = parse_spec(name, namespace, body.get("spec"))
            self.config.images.check(spec)
        except SpecError as exc:
            # Refused: nothing changes, and the status still says what the old fleet does.
            report.problems.append((exc.reason, exc.message))
            running = [
                await self.kube.get(DEPLOYMENTS, namespace, n)
                for n in shard_names(name, _shards_serving(status))
            ]
            serving = _ours(running, uid)
            deployment = shards.fleet_deployment(serving)
            stats = await self._stats(namespace, name) if deployment else _Stats([], {}, [], ())
            observed = self._observed(name, serving, stats, status)
            await self._refuse(body, report.problems, observed, self._fleet(deployment, stats), now)
            return report

        # Observe: every object the cluster should own, whether it is really ours, the pods.
        owner = desired_mod.Owner(name, namespace, uid)
        sk = spec.signing_keys
        names = [(resource_of(o), o["metadata"]["name"]) for o in self._children(spec, owner)]
        names += [(SECRETS, sk.signer_secret_name), (SECRETS, sk.jwks_secret_name)]
        existing: dict[tuple[Resource, str], dict[str, Any] | None] = {}
        for res, child in names:
            existing[res, child] = await self._get_child(res, namespace, child)
        for (res, child), obj in existing.items():
            if obj is not None and not ownership.controlled_by(obj, uid):
                report.problems.append(
                    (
                        "NameConflict",
                        f"{res.kind} {child} already exists and belongs to "
                        f"{ownership.describe_controller(obj)}; this GameSyncCluster changes "
                        "nothing until it is renamed or removed",
                    )
                )
        # Someone else's Deployment is not this cluster's fleet; K shards are one fleet.
        shard_deployments = _ours(
            [existing[DEPLOYMENTS, n] for n in shard_names(name, spec.gateway.shards)], uid
        )
        deployment = shards.fleet_deployment(shard_deployments)
        stats = await self._stats(namespace, name)
        observed = self._observed(name, shard_deployments, stats, status)
        if report.problems:
            await self._refuse(body, report.problems, observed, self._fleet(deployment, stats), now)
            return report

        if spec.paused:
            # Still the truth about what runs, but nothing is changed to make it so.
            size = int(((deployment or {}).get("spec") or {}).get("replicas") or 0)
            serving = observed["readyReplicas"] >= max(1, size)
            conditions = [
                Condition(
                    "Ready",
                    "True" if serving else "False",
                    "Paused",
                    f"{observed['readyReplicas']}/{size} gateway replicas ready (paused)",
                ),
                Condition(
                    "Paused", "True", "Paused", "spec.paused is true: the operator changes nothing"
                ),
                Condition("Progressing", "False", "Paused", "paused"),
            ]
            await self._write_status(body, observed, conditions, generation, now)
            return report

        # Keys: the rotation step, written in the order the plan gives.
        keys_ready = await self._rotate(body, spec, status, existing, stats, now, emit, report)

        # Replicas.
        replicas, scale_status, scaling_condition = self._replicas(
            spec, shard_deployments, status, stats, now, emit
        )

        # Children.
        wanted = self._children(spec, owner, replicas)
        present: set[tuple[Resource, str]] = set()
        for obj in wanted:
            key = (resource_of(obj), obj["metadata"]["name"])
            if await self._ensure(obj, existing[key], uid, report):
                present.add(key)
        await self._remove_unwanted(spec, uid, {resource_of(o) for o in wanted}, report)
        serving_shards = await self._retire_shards(spec, uid, status, shard_deployments, report)

        if spec.autoscaling.mode == "Operator" and stats.answered:
            await self._set_deletion_costs(namespace, stats, report)

        # Rebalancing: move connections from pods well above their shard's mean (after a
        # scale-up); a client a pod sheds comes back to the same shard.
        rebalancing, rebalance_status = await self._rebalance(
            spec, shard_deployments, status, stats, now, emit
        )

        # Status.
        runtime_hash = desired_mod.runtime_config_hash(spec)
        count = spec.gateway.shards
        want = replicas * count if isinstance(replicas, int) else observed["replicas"]
        rejected = sorted(n for n, st in stats.answered.items() if not st.runtime_valid)
        if rejected:
            report.problems.append(
                (
                    "RuntimeConfigRejected",
                    f"gateways kept their last good runtime config: {', '.join(rejected)}",
                )
            )
        dstatus = (deployment or {}).get("status") or {}
        autoscaled = spec.autoscaling.mode in ("HPA", "KEDA")
        floor = spec.autoscaling.min_replicas * count if autoscaled else want
        conditions = cluster_conditions(
            Health(
                want=want,
                fleet=self._fleet(deployment, stats, floor, self._missing(spec, present)),
                updated=int(dstatus.get("updatedReplicas") or 0) if deployment else None,
                keys_ready=keys_ready,
                scaling=scaling_condition,
                monitoring=self._monitoring(spec, present),
                rebalancing=rebalancing,
                runtime_stale=sum(
                    1
                    for st in stats.answered.values()
                    if st.runtime_valid and st.runtime_hash != runtime_hash
                ),
                problems=tuple(report.problems),
                changed=tuple(report.changed),
            )
        )
        observed.update(
            {
                "desiredReplicas": want,
                "shards": serving_shards,
                "runtimeConfigHash": runtime_hash,
                "endpoint": self._endpoint(spec),
                "autoscaling": scale_status,
                "rebalance": rebalance_status,
            }
        )
        await self._write_status(body, observed, conditions, generation, now)
        self.config.metrics.observed(
            namespace,
            name,
            connections=stats.total if stats.complete else None,
            desired=want,
            ready=int(observed["readyReplicas"]),
        )
        return report

    def _children(
        self, spec: ClusterSpec, owner: desired_mod.Owner, replicas: desired_mod.Replicas = None
    ) -> list[dict[str, Any]]:
        return desired_mod.children(spec, owner, replicas, self.config.peer)

    async def _get_child(self, res: Resource, namespace: str, name: str) -> dict[str, Any] | None:
        """The object, or None when absent or when its API is not served (reported on write)."""
        try:
            return await self.kube.get(res, namespace, name)
        except ApiError as exc:
            if exc.status == 404 or res not in _OPTIONAL:
                raise
            return None

    async def _stats(self, namespace: str, name: str) -> _Stats:
        """/v1/stats of every running gateway pod, ready or not: an unready pod (a Redis
        outage makes them all unready) still holds sockets, and silence is not zero."""
        pods = await self.kube.list(PODS, namespace, selector_labels(name))
        running = [p for p in pods if _is_running(p)]
        results = await gather_stats(self.http, running, self.config.resolve_stats)
        answered = {n: s for n, s in results.items() if isinstance(s, PodStats)}
        ready = [p["metadata"]["name"] for p in running if _is_ready(p)]
        ready_kids = (
            tuple(answered[n].kids for n in ready) if all(n in answered for n in ready) else None
        )
        return _Stats(running, answered, ready, ready_kids)

    @staticmethod
    def _observed(
        name: str,
        deployments: list[dict[str, Any] | None],
        stats: _Stats,
        status: Mapping[str, Any],
    ) -> dict[str, Any]:
        """The status figures of what runs; `deployments` are the shards', in shard order."""
        dstatus = (shards.fleet_deployment(deployments) or {}).get("status") or {}
        total = stats.total if stats.complete else None
        connections = {n: s.connections for n, s in stats.answered.items()}
        shard = shards.scale_shard(deployments, stats.running, connections)
        scaled = deployments[0] if shard is None else deployments[shard]
        return {
            "labelSelector": label_selector(name),
            "replicas": int(dstatus.get("replicas") or 0),
            "readyReplicas": int(dstatus.get("readyReplicas") or 0),
            # The scale subresource's pair, in the unit of spec.gateway.replicas: one shard.
            "shardReplicas": int(((scaled or {}).get("status") or {}).get("replicas") or 0),
            "shardSelector": label_selector(name, shard),
            # A partial sum would understate the load: keep the last complete one.
            "connections": total if total is not None else status.get("connections"),
        }

    # -- keys ---------------------------------------------------------------------------------

    async def _rotate(
        self,
        body: Mapping[str, Any],
        spec: ClusterSpec,
        status: Mapping[str, Any],
        existing: Mapping[tuple[Resource, str], dict[str, Any] | None],
        stats: _Stats,
        now: dt.datetime,
        emit: EventSink,
        report: PassReport,
    ) -> Condition:
        sk = spec.signing_keys
        keys_status = signing_secrets.keys_status_from_dict(status.get("signingKeys"))
        try:
            signer = signing_secrets.signer_from_secret(
                existing[SECRETS, sk.signer_secret_name],
                unknown_activation=keys_status.last_rotation_time or now,
            )
        except signing_secrets.SigningSecretError as exc:
            report.problems.append(("SignerSecretInvalid", str(exc)))
            return Condition("KeysReady", "False", "SignerSecretInvalid", str(exc))
        jwks = signing_secrets.jwks_from_secret(existing[SECRETS, sk.jwks_secret_name])
        annotations = body["metadata"].get("annotations") or {}
        evidence = rotation.Evidence(
            now=now, pods_kids=stats.ready_kids, rotate_request=annotations.get(ROTATE_ANNOTATION)
        )
        plan = rotation.plan(
            rotation.Observed(signer, jwks, keys_status),
            sk,
            evidence,
            lambda: self.config.generate_key(sk.algorithm),
        )
        owner = desired_mod.Owner(spec.name, spec.namespace, body["metadata"]["uid"])
        for kind, payload in plan.steps():
            if kind == "jwks":
                secret = signing_secrets.jwks_secret(spec, payload)
            elif kind == "signer":
                secret = signing_secrets.signer_secret(spec, payload)
            else:
                self.config.metrics.rotation(spec.namespace, spec.name, payload.next_rotation_time)
                patch = {"signingKeys": signing_secrets.keys_status_to_dict(payload)}
                if _pruned(patch["signingKeys"]) != _pruned(status.get("signingKeys")):
                    await self.kube.patch_status(spec.namespace, spec.name, patch)
                continue
            desired_mod.adopt([secret], owner)
            # Strict: the order of these writes is the safety argument, so a failed write
            # ends the pass before the next one (the next pass re-plans from what exists).
            actual = await self.kube.get(SECRETS, spec.namespace, secret["metadata"]["name"])
            await self._ensure(secret, actual, owner.uid, report, strict=True)
        for event in plan.events:
            emit(event.type, event.reason, event.message)
        return Condition("KeysReady", *plan.ready)

    # -- replicas -----------------------------------------------------------------------------

    def _replicas(
        self,
        spec: ClusterSpec,
        deployments: list[dict[str, Any] | None],
        status: Mapping[str, Any],
        stats: _Stats,
        now: dt.datetime,
        emit: EventSink,
    ) -> tuple[desired_mod.Replicas, dict[str, Any], Condition]:
        """Replicas of each shard's Deployment (`deployments`, in shard order): the scaler's
        decision for the busiest shard applies to every shard, as does `spec.gateway.replicas`;
        an HPA or KEDA sizes each shard on its own."""
        mode = spec.autoscaling.mode
        sizes = [((d or {}).get("spec") or {}).get("replicas") for d in deployments]
        current = max((int(n) for n in sizes if n is not None), default=None)
        if mode in ("HPA", "KEDA"):
            # Hand replicas over without a dip: while only this operator owns the field, keep
            # applying the live value (leaving it out would reset it to the default of 1);
            # once the autoscaler has written it, stop claiming it.
            holds: list[int | None] = []
            for deployment, size in zip(deployments, sizes, strict=True):
                holders = ownership.field_managers(deployment, ("spec", "replicas"))
                holds.append(size if holders and not ownership.foreign(holders) else None)
            return (
                holds[0] if len(holds) == 1 else tuple(holds),
                {"owner": mode},
                Condition("ScalingActive", "True", mode, f"the {mode} owns the replica count"),
            )
        if mode == "None":
            return (
                spec.gateway.replicas,
                {"owner": "Spec"},
                Condition("ScalingActive", "True", "Spec", "spec.gateway.replicas sets the size"),
            )
        raw = status.get("autoscaling") or {}
        state = scaling.ScalingState(
            below_since=signing_secrets.parse_time(raw.get("belowSince")),
            last_scale_time=signing_secrets.parse_time(raw.get("lastScaleTime")),
        )
        if current is None:
            current = spec.autoscaling.min_replicas
        load = stats.total
        if load is not None and spec.gateway.shards > 1:
            connections = {n: st.connections for n, st in stats.answered.items()}
            load = shards.busiest_shard(stats.running, connections, spec.gateway.shards)
        decision = scaling.decide(int(current), load, stats.complete, state, spec.autoscaling, now)
        if decision.replicas != current:
            emit("Normal", decision.reason, decision.message)
        running, reporting = len(stats.running), len(stats.answered)
        if stats.complete:
            condition = Condition(
                "ScalingActive",
                "True",
                "CompleteStats",
                f"{reporting}/{running} running gateway pods reported their connections",
            )
        else:
            condition = Condition(
                "ScalingActive",
                "False",
                "IncompleteStats" if reporting else "NoStats",
                f"{reporting}/{running} running gateway pods reported their connections: "
                "no scale-down until every one does",
            )
        return (
            decision.replicas,
            {
                "owner": "Operator",
                "recommendation": decision.recommendation,
                "belowSince": signing_secrets.format_time(decision.state.below_since)
                if decision.state.below_since
                else None,
                "lastScaleTime": signing_secrets.format_time(decision.state.last_scale_time)
                if decision.state.last_scale_time
                else None,
                "reason": decision.reason,
                "message": decision.message,
                "pods": running,
                "reporting": reporting,
            },
            condition,
        )

    async def _set_deletion_costs(self, namespace: str, stats: _Stats, report: PassReport) -> None:
        current: dict[str, int | None] = {}
        for pod in stats.running:
            raw = (pod["metadata"].get("annotations") or {}).get(DELETION_COST)
            current[pod["metadata"]["name"]] = (
                int(raw) if raw and raw.lstrip("-").isdigit() else None
            )
        changes = scaling.deletion_costs(
            {n: s.connections for n, s in stats.answered.items()}, current
        )
        for pod_name, cost in changes.items():
            try:
                await self.kube.patch(
                    PODS,
                    namespace,
                    pod_name,
                    {"metadata": {"annotations": {DELETION_COST: str(cost)}}},
                )
            except ApiError as exc:
                if exc.status != 404:  # a pod that just went away needs no cost
                    report.problems.append(("PodAnnotationFailed", exc.message))

    # -- children -----------------------------------------------------------------------------

    async def _ensure(
        self,
        obj: dict[str, Any],
        actual: Mapping[str, Any] | None,
        uid: str,
        report: PassReport,
        strict: bool = False,
    ) -> bool:
        """Create `obj`, or server-side apply it over our own `actual`; failures are problems.

        Never touches an object without this cluster's controller reference, and never
        overwrites a field another manager owns (a FieldConflict instead). `strict` raises.
        Returns whether the object exists now (in whatever version).
        """
        res = resource_of(obj)
        namespace, name = obj["metadata"]["namespace"], obj["metadata"]["name"]
        label = f"{obj['kind']}/{name}"
        obj = ownership.stamp(obj)
        try:
            if actual is None:
                try:
                    await self.kube.create(obj)
                    report.changed.append(f"created {label}")
                    return True
                except ApiError as exc:
                    if exc.status != 409:  # created meanwhile (a replayed event): look again
                        raise
                    actual = await self.kube.get(res, namespace, name)
                    if actual is None:
                        raise
            if not ownership.controlled_by(actual, uid):
                raise ApiError(
                    409,
                    "NameConflict",
                    f"{label} belongs to {ownership.describe_controller(actual)}",
                )
            if contains(actual, obj):
                return True
            await self._upgrade_managed_fields(res, actual)
            try:
                await self.kube.apply(obj)
            except ApplyConflict as exc:
                others = ownership.foreign(c.manager for c in exc.conflicts)
                if others:
                    raise
                # Only earlier versions of this operator own those fields: take them back.
                await self.kube.apply(obj, force=True)
            report.changed.append(f"updated {label}")
            return True
        except ApplyConflict as exc:
            if strict:
                raise
            fields = ", ".join(
                f"{c.field} (owned by {c.manager})"
                for c in exc.conflicts
                if c.manager not in ownership.OWN_MANAGERS
            )
            report.problems.append(
                ("FieldConflict", f"{label}: not overwritten, other managers own {fields}")
            )
            return True
        except ApiError as exc:
            if strict:
                raise
            if exc.status == 404 and res is PODMONITORS:
                return False  # no Prometheus Operator here: the Monitoring condition says so
            if exc.status == 404 and res in _OPTIONAL:
                reason = f"{obj['kind']}Unavailable"
                message = f"{res.api_version} {obj['kind']} is not served by this cluster"
            elif exc.reason == "NameConflict":
                reason, message = "NameConflict", exc.message
            else:
                reason, message = f"{obj['kind']}Failed", f"{label}: {exc}"
            report.problems.append((reason, message))
            return actual is not None

    async def _upgrade_managed_fields(self, res: Resource, actual: Mapping[str, Any]) -> None:
        """Make the fields an earlier, pre-apply operator set this operator's applied ones."""
        upgraded = ownership.upgraded_managed_fields(actual)
        if upgraded is None:
            return
        meta = actual["metadata"]
        operations: list[dict[str, Any]] = []
        if meta.get("resourceVersion"):  # a precondition: nobody wrote in between
            operations.append(
                {
                    "op": "test",
                    "path": "/metadata/resourceVersion",
                    "value": meta["resourceVersion"],
                }
            )
        operations.append({"op": "replace", "path": "/metadata/managedFields", "value": upgraded})
        await self.kube.json_patch(res, meta["namespace"], meta["name"], operations)

    async def _remove_unwanted(
        self, spec: ClusterSpec, uid: str, wanted: set[Resource], report: PassReport
    ) -> None:
        """Delete optional children of a mode no longer chosen (only our own)."""
        per_shard = shard_names(spec.name, spec.gateway.shards)
        for res in (HTTPROUTES, INGRESSES, HPAS, SCALEDOBJECTS, NETWORKPOLICIES, PODMONITORS):
            if res in wanted:
                continue
            for name in per_shard if res in (HPAS, SCALEDOBJECTS) else [spec.name]:
                await self._delete_ours(res, spec.namespace, name, uid, report)

    async def _delete_ours(
        self, res: Resource, namespace: str, name: str, uid: str, report: PassReport
    ) -> None:
        try:
            obj = await self.kube.get(res, namespace, name)
        except ApiError:
            return  # the API is not served here: nothing of ours can exist
        if obj is not None and ownership.controlled_by(obj, uid):
            await self.kube.delete(res, namespace, name)
            report.changed.append(f"deleted {obj.get('kind')}/{name}")

    async def _retire_shards(
        self,
        spec: ClusterSpec,
        uid: str,
        status: Mapping[str, Any],
        deployments: list[dict[str, Any] | None],
        report: PassReport,
    ) -> int:
        """After a change of `spec.gateway.shards`: remove the previous layout's Deployments,
        Services and autoscalers once every shard runs the new count with a ready pod (until
        then the old pods keep serving); the shard count that serves (`status.shards`)."""
        previous = _shards_serving(status)
        retired = shards.retired_names(spec.name, previous, spec.gateway.shards)
        if not retired:
            return spec.gateway.shards
        old = _ours([await self.kube.get(DEPLOYMENTS, spec.namespace, n) for n in retired], uid)
        if all(d is None for d in old):
            return spec.gateway.shards  # nothing of the previous layout runs (a new cluster)
        if not all(shards.serves(d, spec.gateway.shards) for d in deployments):
            report.changed.append(
                f"resharding {previous} → {spec.gateway.shards}: waiting for every shard to "
                "run the new count with a ready pod before retiring the old ones"
            )
            return previous
        for name in retired:
            await self._delete_ours(DEPLOYMENTS, spec.namespace, name, uid, report)
            for res in (HPAS, SCALEDOBJECTS):
                await self._delete_ours(res, spec.namespace, name, uid, report)
            if name != spec.name:  # `name` is the Service of every pod: kept
                await self._delete_ours(SERVICES, spec.namespace, name, uid, report)
        return spec.gateway.shards

    # -- rebalancing --------------------------------------------------------------------------

    async def _rebalance(
        self,
        spec: ClusterSpec,
        deployments: list[dict[str, Any] | None],
        status: Mapping[str, Any],
        stats: _Stats,
        now: dt.datetime,
        emit: EventSink,
    ) -> tuple[str | None, dict[str, Any]]:
        """Ask pods well above their shard's mean to shed toward it (`deployments` in shard
        order); (Progressing message, status)."""
        groups, strays = shards.by_shard(stats.running, spec.gateway.shards)
        loads = [
            _shard_load(pods, deployment, stats)
            for pods, deployment in zip(groups, deployments, strict=True)
        ]
        raw = status.get("rebalance") or {}
        decision = rebalance.decide_shards(
            loads,
            spec.rebalance,
            spec.gateway.evacuation_rate,
            # Before the first move, the endpoints must drop the (now unready) pod.
            float(desired_mod.READINESS_PERIOD + 1),
            now,
            signing_secrets.parse_time(raw.get("nextAfter")),
            strays=len(strays),
        )
        refused = []
        for req in decision.requests:
            pod = next(p for p in stats.running if p["metadata"]["name"] == req.pod)
            base = self.config.resolve_stats(pod)
            try:
                if base is None:
                    raise StatsError(f"{req.pod}: no address")
                await request_shed(
                    self.http, req.pod, base, req.connections, req.seconds, req.delay
                )
            except StatsError as exc:
                refused.append(str(exc))
        if decision.requests:
            emit("Normal", "Rebalancing", decision.message)
        for why in refused:
            emit("Warning", "RebalanceRefused", why)
        shedding = sorted(n for n, s in stats.answered.items() if s.shedding)
        message = None
        if decision.requests:
            message = decision.message
        elif shedding:
            mean = "the fleet mean" if spec.gateway.shards == 1 else "their shard's mean"
            message = f"{', '.join(shedding)} moving connections toward {mean}"
        next_after = decision.next_after if decision.requests else raw.get("nextAfter")
        return message, {
            "reason": decision.reason,
            "message": decision.message,
            "shedding": shedding,
            "lastRebalanceTime": signing_secrets.format_time(now)
            if decision.requests
            else raw.get("lastRebalanceTime"),
            "nextAfter": signing_secrets.format_time(next_after)
            if isinstance(next_after, dt.datetime)
            else next_after,
        }

    # -- status -------------------------------------------------------------------------------

    @staticmethod
    def _missing(spec: ClusterSpec, present: set[tuple[Resource, str]]) -> tuple[str, ...]:
        """Exposure objects that do not exist after this pass's writes."""
        needed = [(SERVICES, spec.name)]
        if spec.gateway.shards > 1:
            needed += [(SERVICES, n) for n in shard_names(spec.name, spec.gateway.shards)]
        if spec.exposure.mode == "HTTPRoute":
            needed.append((HTTPROUTES, spec.name))
        elif spec.exposure.mode == "Ingress":
            needed.append((INGRESSES, spec.name))
        return tuple(f"{res.kind}/{name}" for res, name in needed if (res, name) not in present)

    @staticmethod
    def _monitoring(spec: ClusterSpec, present: set[tuple[Resource, str]]) -> Condition:
        if not spec.monitoring.pod_monitor:
            return Condition(
                "Monitoring",
                "False",
                "Disabled",
                "no PodMonitor (monitoring.podMonitor.enabled is false); the pods carry "
                "prometheus.io/scrape annotations",
            )
        if (PODMONITORS, spec.name) in present:
            return Condition(
                "Monitoring",
                "True",
                "PodMonitor",
                f"PodMonitor {spec.name} scrapes the internal port as job gamesync-gateway",
            )
        return Condition(
            "Monitoring",
            "False",
            "PodMonitorUnavailable",
            "monitoring.coreos.com/v1 PodMonitor is not served by this cluster (no Prometheus "
            "Operator): skipped; the pods carry prometheus.io/scrape annotations",
        )

    @staticmethod
    def _endpoint(spec: ClusterSpec) -> str:
        ex = spec.exposure
        if ex.mode == "None" or not ex.host:
            return f"ws://{spec.name}.{spec.namespace}.svc:{PUBLIC_PORT}{ex.path}"
        scheme = "wss" if ex.tls_secret_name or ex.mode == "HTTPRoute" else "ws"
        return f"{scheme}://{ex.host}{ex.path}"

    async def _write_status(
        self,
        body: Mapping[str, Any],
        fields: Mapping[str, Any],
        conditions: list[Condition],
        generation: int | None,
        now: dt.datetime,
    ) -> None:
        old: Mapping[str, Any] = body.get("status") or {}
        merged = merge_conditions(conditions, old.get("conditions"), generation, now)
        patch: dict[str, Any] = {"observedGeneration": generation, "conditions": merged, **fields}
        if all(_pruned(old.get(k)) == _pruned(v) for k, v in patch.items()):
            return  # nothing new: no write, no event, no loop
        meta = body["metadata"]
        await self.kube.patch_status(meta["namespace"], meta["name"], patch)


def _ours(objs: list[dict[str, Any] | None], uid: str) -> list[dict[str, Any] | None]:
    """The objects this cluster controls; None in place of absent or someone else's."""
    return [o if o is not None and ownership.controlled_by(o, uid) else None for o in objs]


def _shard_load(
    pods: list[Mapping[str, Any]], deployment: Mapping[str, Any] | None, stats: _Stats
) -> rebalance.FleetLoad:
    """One shard's pods (the fleet's, with one shard) as the rebalancer judges them."""
    names = {p["metadata"]["name"] for p in pods}
    answered = {n: s for n, s in stats.answered.items() if n in names}
    dspec = (deployment or {}).get("spec") or {}
    dstatus = (deployment or {}).get("status") or {}
    want = int(dspec.get("replicas") or 0)
    settled = (
        deployment is not None
        and int(dstatus.get("updatedReplicas") or 0) == want
        and int(dstatus.get("readyReplicas") or 0) == want
        and int(dstatus.get("replicas") or 0) == want
    )
    return rebalance.FleetLoad(
        connections={n: s.connections for n, s in answered.items()},
        running=len(pods),
        ready=sum(1 for n in stats.ready if n in names),
        draining=sum(1 for s in answered.values() if s.draining),
        shedding=sum(1 for s in answered.values() if s.shedding),
        settled=settled,
    )


def _shards_serving(status: Mapping[str, Any]) -> int:
    """The shard count whose objects exist and serve (`status.shards`; 1 before any was set)."""
    value = status.get("shards")
    return value if isinstance(value, int) and value >= 1 else 1
