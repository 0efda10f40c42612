"""One reconciliation pass for a GameSyncCluster: observe, let pure functions decide, write.

Level-based and idempotent: every pass reads what exists, so it can run after a crash, twice
in a row (KMock replays watches) or concurrently with a human editing children.
"""

from __future__ import annotations

import asyncio
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
from gamesync_operator import keystore, rotation, scaling
from gamesync_operator.config import DELETION_COST, ROTATE_ANNOTATION, OperatorConfig
from gamesync_operator.errors import ApiError, SpecError
from gamesync_operator.kube import (
    CLUSTERS,
    DEPLOYMENTS,
    HPAS,
    HTTPROUTES,
    INGRESSES,
    PODS,
    SCALEDOBJECTS,
    SECRETS,
    Kube,
    Resource,
    resource_of,
)
from gamesync_operator.spec import ClusterSpec, parse_spec
from gamesync_operator.stats import PodStats, gather_stats
from gamesync_operator.status import Condition, Health, cluster_conditions, merge_conditions

__all__ = ["Outcome", "Reconciler", "contains"]

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


def _is_ready(pod: Mapping[str, Any]) -> bool:
    if pod.get("metadata", {}).get("deletionTimestamp"):
        return False
    conditions = (pod.get("status") or {}).get("conditions") or []
    return any(c.get("type") == "Ready" and c.get("status") == "True" for c in conditions)


@dataclass
class Outcome:
    """What a pass did, for logs and tests."""

    changed: list[str] = field(default_factory=list)
    problems: list[tuple[str, str]] = field(default_factory=list)


class Reconciler:
    """Holds the clients; `reconcile(body)` runs one pass for one GameSyncCluster."""

    def __init__(self, config: OperatorConfig) -> None:
        self.config = config
        self.kube = Kube(config.connect, timeout=config.api_timeout)
        self.http = httpx.AsyncClient(timeout=config.stats_timeout, trust_env=False)
        self._locks: dict[str, asyncio.Lock] = {}

    async def close(self) -> None:
        await self.kube.close()
        await self.http.aclose()

    def _lock(self, uid: str) -> asyncio.Lock:
        return self._locks.setdefault(uid, asyncio.Lock())

    def forget(self, uid: str) -> None:
        self._locks.pop(uid, None)

    async def reconcile(self, body: Mapping[str, Any], emit: EventSink) -> Outcome:
        """One pass; passes for the same object never overlap."""
        async with self._lock(body["metadata"]["uid"]):
            fresh = await self.kube.get(
                CLUSTERS, body["metadata"]["namespace"], body["metadata"]["name"]
            )
            if fresh is None or fresh.get("metadata", {}).get("deletionTimestamp"):
                return Outcome()
            try:
                outcome = await self._pass(fresh, emit)
            except ApiError as exc:
                self.config.metrics.passes.labels("api_error").inc()
                await self._report_api_error(fresh, exc)
                raise
            self.config.metrics.passes.labels("problems" if outcome.problems else "ok").inc()
            return outcome

    async def _report_api_error(self, body: Mapping[str, Any], exc: ApiError) -> None:
        """Say in status why a pass failed (RBAC, an unreachable API); best effort."""
        reason = {0: "ApiUnreachable", 403: "Forbidden", 409: "Conflict"}.get(
            exc.status, "ApiError"
        )
        message = f"the Kubernetes API refused a request: {exc}"
        conditions = [
            Condition("Ready", "False", reason, message),
            Condition("Degraded", "True", reason, message),
        ]
        generation = body["metadata"].get("generation")
        with contextlib.suppress(ApiError):
            await self._write_status(body, {}, conditions, generation, self.config.clock())

    async def _pass(self, body: Mapping[str, Any], emit: EventSink) -> Outcome:
        meta = body["metadata"]
        name, namespace, uid = meta["name"], meta["namespace"], meta["uid"]
        generation = meta.get("generation")
        status: Mapping[str, Any] = body.get("status") or {}
        now = self.config.clock()
        outcome = Outcome()

        try:
            spec = parse_spec(name, namespace, body.get("spec"))
        except SpecError as exc:
            conditions = [
                Condition("Ready", "False", exc.reason, exc.message),
                Condition("Degraded", "True", exc.reason, exc.message),
                Condition("Progressing", "False", exc.reason, "waiting for a valid spec"),
            ]
            await self._write_status(body, {}, conditions, generation, now)
            outcome.problems.append((exc.reason, exc.message))
            return outcome

        # Observe.
        deployment = await self.kube.get(DEPLOYMENTS, namespace, name)
        pods = await self.kube.list(PODS, namespace, desired_mod.selector_labels(name))
        ready_pods = [p for p in pods if _is_ready(p)]
        stats = await gather_stats(self.http, ready_pods, self.config.resolve_stats)
        answered = {n: s for n, s in stats.items() if isinstance(s, PodStats)}
        complete = len(answered) == len(ready_pods)
        total = (
            sum(s.connections for s in answered.values()) if answered or not ready_pods else None
        )
        observed: dict[str, Any] = {
            "labelSelector": desired_mod.label_selector(name),
            "replicas": int(((deployment or {}).get("status") or {}).get("replicas") or 0),
            "readyReplicas": int(
                ((deployment or {}).get("status") or {}).get("readyReplicas") or 0
            ),
            "connections": total if total is not None else status.get("connections"),
        }

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
            return outcome

        # Keys: the rotation step, written in the order the plan gives.
        keys_ready = await self._rotate(body, spec, status, answered, complete, now, emit, outcome)

        # Replicas.
        replicas, scale_status = self._replicas(
            spec, deployment, status, total, complete, now, emit
        )

        # Children.
        owner = desired_mod.Owner(name, namespace, uid)
        wanted = desired_mod.children(spec, owner, replicas)
        for obj in wanted:
            await self._ensure(obj, outcome)
        await self._remove_unwanted(spec, uid, {resource_of(o) for o in wanted}, outcome)

        if spec.autoscaling.mode == "Operator" and answered:
            await self._set_deletion_costs(namespace, ready_pods, answered, outcome)

        # Status.
        runtime_hash = desired_mod.runtime_config_hash(spec)
        want = replicas if replicas is not None else observed["replicas"]
        rejected = sorted(n for n, st in answered.items() if not st.runtime_valid)
        if rejected:
            outcome.problems.append(
                (
                    "RuntimeConfigRejected",
                    f"gateways kept their last good runtime config: {', '.join(rejected)}",
                )
            )
        dstatus = (deployment or {}).get("status") or {}
        conditions = cluster_conditions(
            Health(
                want=want,
                ready_floor=spec.autoscaling.min_replicas
                if spec.autoscaling.mode in ("HPA", "KEDA")
                else want,
                ready=int(observed["readyReplicas"]),
                updated=int(dstatus.get("updatedReplicas") or 0) if deployment else None,
                keys_ready=keys_ready,
                runtime_stale=sum(
                    1
                    for st in answered.values()
                    if st.runtime_valid and st.runtime_hash != runtime_hash
                ),
                problems=tuple(outcome.problems),
                changed=tuple(outcome.changed),
            )
        )
        observed.update(
            {
                "desiredReplicas": want,
                "runtimeConfigHash": runtime_hash,
                "endpoint": self._endpoint(spec),
                "autoscaling": scale_status,
            }
        )
        await self._write_status(body, observed, conditions, generation, now)
        self.config.metrics.observed(
            namespace, name, connections=total, desired=want, ready=int(observed["readyReplicas"])
        )
        return outcome

    # -- keys ---------------------------------------------------------------------------------

    async def _rotate(
        self,
        body: Mapping[str, Any],
        spec: ClusterSpec,
        status: Mapping[str, Any],
        answered: Mapping[str, PodStats],
        complete: bool,
        now: dt.datetime,
        emit: EventSink,
        outcome: Outcome,
    ) -> Condition:
        sk = spec.signing_keys
        keys_status = keystore.keys_status_from_dict(status.get("signingKeys"))
        try:
            signer = keystore.signer_from_secret(
                await self.kube.get(SECRETS, spec.namespace, sk.signer_secret_name),
                unknown_activation=keys_status.last_rotation_time or now,
            )
        except keystore.KeystoreError as exc:
            outcome.problems.append(("SignerSecretInvalid", str(exc)))
            return Condition("KeysReady", "False", "SignerSecretInvalid", str(exc))
        jwks = keystore.jwks_from_secret(
            await self.kube.get(SECRETS, spec.namespace, sk.jwks_secret_name)
        )
        annotations = body["metadata"].get("annotations") or {}
        evidence = rotation.Evidence(
            now=now,
            pods_kids=tuple(s.kids for s in answered.values()) if complete else None,
            rotate_request=annotations.get(ROTATE_ANNOTATION),
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
                secret = keystore.jwks_secret(spec, payload)
            elif kind == "signer":
                secret = keystore.signer_secret(spec, payload)
            else:
                self.config.metrics.rotation(spec.namespace, spec.name, payload.next_rotation_time)
                patch = {"signingKeys": keystore.keys_status_to_dict(payload)}
                if _pruned(patch["signingKeys"]) != _pruned(status.get("signingKeys")):
                    await self.kube.patch(
                        CLUSTERS, spec.namespace, spec.name, {"status": patch}, subresource="status"
                    )
                continue
            desired_mod.adopt([secret], owner)
            # Strict: the order of these writes is the safety argument, so a failed write
            # ends the pass before the next one (the next pass re-plans from what exists).
            await self._ensure(secret, outcome, strict=True)
        for event in plan.events:
            emit(event.type, event.reason, event.message)
        return Condition("KeysReady", *plan.ready)

    # -- replicas -----------------------------------------------------------------------------

    def _replicas(
        self,
        spec: ClusterSpec,
        deployment: Mapping[str, Any] | None,
        status: Mapping[str, Any],
        total: int | None,
        complete: bool,
        now: dt.datetime,
        emit: EventSink,
    ) -> tuple[int | None, dict[str, Any]]:
        mode = spec.autoscaling.mode
        if mode in ("HPA", "KEDA"):
            return None, {"owner": mode}
        if mode == "None":
            return spec.gateway.replicas, {"owner": "Spec"}
        raw = status.get("autoscaling") or {}
        state = scaling.ScalingState(
            below_since=keystore.parse_time(raw.get("belowSince")),
            last_scale_time=keystore.parse_time(raw.get("lastScaleTime")),
        )
        current = ((deployment or {}).get("spec") or {}).get("replicas")
        if current is None:
            current = spec.autoscaling.min_replicas
        decision = scaling.decide(int(current), total, complete, state, spec.autoscaling, now)
        if decision.replicas != current:
            emit("Normal", decision.reason, decision.message)
        return decision.replicas, {
            "owner": "Operator",
            "recommendation": decision.recommendation,
            "belowSince": keystore.format_time(decision.state.below_since)
            if decision.state.below_since
            else None,
            "lastScaleTime": keystore.format_time(decision.state.last_scale_time)
            if decision.state.last_scale_time
            else None,
            "reason": decision.reason,
            "message": decision.message,
        }

    async def _set_deletion_costs(
        self,
        namespace: str,
        pods: list[dict[str, Any]],
        answered: Mapping[str, PodStats],
        outcome: Outcome,
    ) -> None:
        current: dict[str, int | None] = {}
        for pod in pods:
            raw = (pod["metadata"].get("annotations") or {}).get(DELETION_COST)
            current[pod["metadata"]["name"]] = (
                int(raw) if raw and raw.lstrip("-").isdigit() else None
            )
        changes = scaling.deletion_costs({n: s.connections for n, s in answered.items()}, current)
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
                    outcome.problems.append(("PodAnnotationFailed", exc.message))

    # -- children -----------------------------------------------------------------------------

    async def _ensure(self, obj: dict[str, Any], outcome: Outcome, strict: bool = False) -> None:
        """Create or patch `obj` until the server holds it; a failure is a problem, or raised."""
        res = resource_of(obj)
        namespace, name = obj["metadata"]["namespace"], obj["metadata"]["name"]
        label = f"{obj['kind']}/{name}"
        try:
            actual = await self.kube.get(res, namespace, name)
            if actual is None:
                try:
                    await self.kube.create(obj)
                    outcome.changed.append(f"created {label}")
                    return
                except ApiError as exc:
                    if exc.status != 409:  # created meanwhile (a replayed event): compare below
                        raise
                    actual = await self.kube.get(res, namespace, name)
            if actual is not None and contains(actual, obj):
                return
            await self.kube.patch(res, namespace, name, obj)
            outcome.changed.append(f"updated {label}")
        except ApiError as exc:
            if strict:
                raise
            if exc.status == 404 and res in (HTTPROUTES, SCALEDOBJECTS):
                reason = f"{obj['kind']}Unavailable"
                message = f"{res.api_version} {obj['kind']} is not served by this cluster"
            else:
                reason, message = f"{obj['kind']}Failed", f"{label}: {exc}"
            outcome.problems.append((reason, message))

    async def _remove_unwanted(
        self, spec: ClusterSpec, uid: str, wanted: set[Resource], outcome: Outcome
    ) -> None:
        """Delete exposure/autoscaler children of a mode no longer chosen (only our own)."""
        for res in (HTTPROUTES, INGRESSES, HPAS, SCALEDOBJECTS):
            if res in wanted:
                continue
            try:
                obj = await self.kube.get(res, spec.namespace, spec.name)
            except ApiError:
                continue  # the API is not served here: nothing of ours can exist
            if obj is None:
                continue
            refs = obj.get("metadata", {}).get("ownerReferences") or []
            if any(r.get("uid") == uid and r.get("controller") for r in refs):
                await self.kube.delete(res, spec.namespace, spec.name)
                outcome.changed.append(f"deleted {obj.get('kind')}/{spec.name}")

    # -- status -------------------------------------------------------------------------------

    @staticmethod
    def _endpoint(spec: ClusterSpec) -> str:
        ex = spec.exposure
        if ex.mode == "None" or not ex.host:
            return f"ws://{spec.name}.{spec.namespace}.svc:{desired_mod.PUBLIC_PORT}{ex.path}"
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
        await self.kube.patch(
            CLUSTERS, meta["namespace"], meta["name"], {"status": patch}, subresource="status"
        )
