"""The GameSyncCluster spec, typed, defaulted from the CRD schema and validated once."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from gamesync_operator.crd import apply_defaults, spec_schema
from gamesync_operator.errors import SpecError

__all__ = [
    "AuthSpec",
    "AutoscalingSpec",
    "ClusterSpec",
    "ExposureSpec",
    "GatewaySpec",
    "MonitoringSpec",
    "NetworkPolicySpec",
    "ParentRef",
    "RebalanceSpec",
    "RedisSpec",
    "SecretKeyRef",
    "SigningKeysSpec",
    "TracingSpec",
    "parse_duration",
    "parse_spec",
]

_DURATION_PART = re.compile(r"([0-9]+)(h|m|s)")
_UNIT_SECONDS = {"h": 3600, "m": 60, "s": 1}


def parse_duration(text: str) -> int:
    """Seconds in a Go-style duration made of h/m/s parts, e.g. `1h30m`."""
    if not re.fullmatch(r"([0-9]+(h|m|s))+", text):
        raise SpecError("InvalidDuration", f"{text!r} is not a duration like 90s, 15m or 720h")
    return sum(int(n) * _UNIT_SECONDS[unit] for n, unit in _DURATION_PART.findall(text))


@dataclass(frozen=True)
class SecretKeyRef:
    name: str
    key: str


@dataclass(frozen=True)
class GatewaySpec:
    image: str
    image_pull_policy: str
    replicas: int  # per shard
    resources: dict[str, dict[str, str | int]]
    log_level: str
    pre_stop_seconds: int
    drain_seconds: int
    termination_grace_period_seconds: int
    min_ready_seconds: int
    max_unavailable: int
    evacuation_rate: int  # connections a second one pod moves away (drain, rebalance)
    ping_interval_seconds: int
    idle_timeout_seconds: int
    service_account_name: str | None
    pod_annotations: dict[str, str]
    publish_token: SecretKeyRef | None
    #: game-affine shards (DESIGN §2): one Deployment + Service each; 1: one fleet, as before
    shards: int = 1
    #: the proxy header naming the client (`--client-address-header`); None: the peer is
    #: taken for the client, and the per-address limits stay off
    client_address_header: str | None = None

    @property
    def shard_indexes(self) -> list[int | None]:
        """The shards to render: `[None]` (the single fleet, named as before) or 0..K-1."""
        return [None] if self.shards == 1 else list(range(self.shards))


@dataclass(frozen=True)
class RedisSpec:
    mode: str
    url: SecretKeyRef


@dataclass(frozen=True)
class ParentRef:
    name: str
    namespace: str | None = None
    section_name: str | None = None


@dataclass(frozen=True)
class ExposureSpec:
    mode: str
    host: str | None
    path: str
    tls_secret_name: str | None
    idle_timeout_seconds: int
    parent_refs: tuple[ParentRef, ...]
    ingress_class_name: str | None
    ingress_annotations: dict[str, str]


@dataclass(frozen=True)
class AutoscalingSpec:
    mode: str
    min_replicas: int
    max_replicas: int
    target_connections_per_pod: int
    scale_down_stabilization_seconds: int
    scale_down_period_seconds: int
    metric_name: str
    keda_server_address: str | None
    keda_query: str | None


@dataclass(frozen=True)
class SigningKeysSpec:
    algorithm: str
    rotation_interval: int
    max_token_lifetime: int
    clock_skew: int
    publish_lead: int
    jwks_secret_name: str
    signer_secret_name: str

    @property
    def retire_after(self) -> int:
        """Seconds from an activation until the previous key can have signed no live token.

        Backends may keep signing with the old key until the signer Secret reaches them
        (bounded by the publish lead), and such a token lives up to max lifetime + skew.
        """
        return self.publish_lead + self.max_token_lifetime + self.clock_skew


@dataclass(frozen=True)
class AuthSpec:
    policy: str
    backend_url: str | None
    audience: str | None
    issuer: str | None
    allowed_origins: tuple[str, ...]


@dataclass(frozen=True)
class TracingSpec:
    enabled: bool
    endpoint: str | None
    protocol: str
    sampler: str
    ratio: float
    resource_attributes: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class NetworkPolicySpec:
    """Who may reach the gateway pods' two ports (the operator itself always may, on 9000)."""

    enabled: bool
    public_from: tuple[dict[str, Any], ...]  # NetworkPolicyPeers; empty: any source
    monitoring_namespace: str | None  # may scrape the internal port
    backend_selector: dict[str, Any] | None  # game backend pods here: may publish (9000)


@dataclass(frozen=True)
class MonitoringSpec:
    """Scrape discovery for the Prometheus Operator (the pods keep prometheus.io annotations)."""

    pod_monitor: bool
    interval: str | None
    labels: dict[str, str]


@dataclass(frozen=True)
class RebalanceSpec:
    """When a pod holds enough more than the fleet mean to be asked to shed toward it."""

    enabled: bool
    absolute_threshold: int
    relative_threshold_percent: int


@dataclass(frozen=True)
class ClusterSpec:
    """A validated GameSyncCluster spec with every default filled in."""

    name: str
    namespace: str
    paused: bool
    gateway: GatewaySpec
    redis: RedisSpec
    exposure: ExposureSpec
    autoscaling: AutoscalingSpec
    signing_keys: SigningKeysSpec
    auth: AuthSpec
    tracing: TracingSpec
    network_policy: NetworkPolicySpec
    monitoring: MonitoringSpec
    rebalance: RebalanceSpec


def _ref(raw: Mapping[str, Any] | None) -> SecretKeyRef | None:
    if raw is None:
        return None
    if not isinstance(raw.get("name"), str) or not raw["name"]:
        raise SpecError("InvalidSpec", "a secret reference needs a name")
    return SecretKeyRef(name=raw["name"], key=str(raw.get("key", "")))


def _section(spec: Mapping[str, Any], name: str) -> dict[str, Any]:
    value = spec.get(name)
    if not isinstance(value, dict):
        raise SpecError("InvalidSpec", f"spec.{name} must be an object")
    return value


def parse_spec(name: str, namespace: str, raw: Mapping[str, Any] | None) -> ClusterSpec:
    """Default and validate a raw spec; raise SpecError with a reason for anything wrong.

    The CRD's CEL rules refuse most of this at admission; the operator checks again so that a
    cluster with an older CRD (or none of its validation) still gets a condition, not a crash.
    """
    if not isinstance(raw, Mapping):
        raise SpecError("InvalidSpec", "spec is missing")
    spec = apply_defaults(spec_schema(), dict(raw))
    try:
        return _parse(name, namespace, spec)
    except (KeyError, TypeError, ValueError) as exc:
        raise SpecError("InvalidSpec", f"spec is malformed: {exc}") from exc


def _parse(name: str, namespace: str, spec: dict[str, Any]) -> ClusterSpec:
    gw = _section(spec, "gateway")
    if not isinstance(gw.get("image"), str) or not gw["image"]:
        raise SpecError("InvalidSpec", "spec.gateway.image is required")
    gateway = GatewaySpec(
        image=gw["image"],
        image_pull_policy=gw["imagePullPolicy"],
        replicas=int(gw["replicas"]),
        shards=int(gw["shards"]),
        resources={k: dict(v) for k, v in gw["resources"].items()},
        log_level=gw["logLevel"],
        pre_stop_seconds=int(gw["preStopSeconds"]),
        drain_seconds=int(gw["drainSeconds"]),
        termination_grace_period_seconds=int(gw["terminationGracePeriodSeconds"]),
        min_ready_seconds=int(gw["minReadySeconds"]),
        max_unavailable=int(gw["maxUnavailable"]),
        evacuation_rate=int(gw["evacuationRate"]),
        ping_interval_seconds=int(gw["pingIntervalSeconds"]),
        idle_timeout_seconds=int(gw["idleTimeoutSeconds"]),
        service_account_name=gw.get("serviceAccountName"),
        pod_annotations=dict(gw.get("podAnnotations") or {}),
        publish_token=_ref(gw.get("publishTokenSecretRef")),
        client_address_header=gw.get("clientAddressHeader"),
    )
    margin = gateway.pre_stop_seconds + gateway.drain_seconds + 5
    if gateway.termination_grace_period_seconds < margin:
        raise SpecError(
            "GracePeriodTooShort",
            f"terminationGracePeriodSeconds {gateway.termination_grace_period_seconds} must be at "
            f"least preStopSeconds + drainSeconds + 5 = {margin}",
        )

    rd = _section(spec, "redis")
    url = _ref(rd.get("urlSecretRef"))
    if url is None:
        raise SpecError("InvalidSpec", "spec.redis.urlSecretRef is required")
    redis = RedisSpec(mode=rd["mode"], url=url)

    ex = _section(spec, "exposure")
    parent_refs = tuple(
        ParentRef(name=p["name"], namespace=p.get("namespace"), section_name=p.get("sectionName"))
        for p in (ex.get("httpRoute") or {}).get("parentRefs") or []
    )
    exposure = ExposureSpec(
        mode=ex["mode"],
        host=ex.get("host"),
        path=ex["path"],
        tls_secret_name=ex.get("tlsSecretName"),
        idle_timeout_seconds=int(ex["idleTimeoutSeconds"]),
        parent_refs=parent_refs,
        ingress_class_name=(ex.get("ingress") or {}).get("className"),
        ingress_annotations=dict((ex.get("ingress") or {}).get("annotations") or {}),
    )
    if exposure.mode == "HTTPRoute" and not parent_refs:
        raise SpecError("InvalidSpec", "HTTPRoute exposure needs exposure.httpRoute.parentRefs")
    if exposure.tls_secret_name and not exposure.host:
        raise SpecError("InvalidSpec", "exposure.tlsSecretName needs exposure.host")

    if not 1 <= gateway.shards <= 64:
        # The CRD's schema says so too; a spec read before the CRD was updated may not.
        raise SpecError("InvalidSpec", f"spec.gateway.shards {gateway.shards} is not in 1..64")
    au = _section(spec, "autoscaling")
    keda = au.get("keda") or {}
    autoscaling = AutoscalingSpec(
        mode=au["mode"],
        min_replicas=int(au["minReplicas"]),
        max_replicas=int(au["maxReplicas"]),
        target_connections_per_pod=int(au["targetConnectionsPerPod"]),
        scale_down_stabilization_seconds=int(au["scaleDownStabilizationSeconds"]),
        scale_down_period_seconds=int(au["scaleDownPeriodSeconds"]),
        metric_name=au["metricName"],
        keda_server_address=keda.get("serverAddress"),
        keda_query=keda.get("query"),
    )
    if autoscaling.min_replicas > autoscaling.max_replicas:
        raise SpecError(
            "InvalidReplicaBounds",
            f"autoscaling.minReplicas {autoscaling.min_replicas} exceeds "
            f"maxReplicas {autoscaling.max_replicas}",
        )
    if autoscaling.mode == "KEDA" and not autoscaling.keda_server_address:
        raise SpecError("InvalidSpec", "KEDA autoscaling needs autoscaling.keda.serverAddress")

    sk = _section(spec, "signingKeys")
    signing_keys = SigningKeysSpec(
        algorithm=sk["algorithm"],
        rotation_interval=parse_duration(sk["rotationInterval"]),
        max_token_lifetime=parse_duration(sk["maxTokenLifetime"]),
        clock_skew=parse_duration(sk["clockSkew"]),
        publish_lead=parse_duration(sk["publishLead"]),
        jwks_secret_name=sk.get("jwksSecretName") or f"{name}-jwks",
        signer_secret_name=sk.get("signerSecretName") or f"{name}-signer",
    )
    if signing_keys.rotation_interval <= signing_keys.retire_after:
        raise SpecError(
            "RotationTooFrequent",
            "signingKeys.rotationInterval must exceed publishLead + maxTokenLifetime + clockSkew",
        )
    if signing_keys.jwks_secret_name == signing_keys.signer_secret_name:
        raise SpecError("InvalidSpec", "the JWKS and signer Secrets must be different Secrets")

    ah = _section(spec, "auth")
    auth = AuthSpec(
        policy=ah["policy"],
        backend_url=ah.get("backendUrl"),
        audience=ah.get("audience"),
        issuer=ah.get("issuer"),
        allowed_origins=tuple(ah.get("allowedOrigins") or ()),
    )
    if auth.policy == "backend" and not auth.backend_url:
        raise SpecError("InvalidSpec", "auth.policy backend needs auth.backendUrl")

    tr = _section(spec, "tracing")
    tracing = TracingSpec(
        enabled=bool(tr["enabled"]),
        endpoint=tr.get("endpoint"),
        protocol=tr["protocol"],
        sampler=tr["sampler"],
        ratio=float(tr["ratio"]),
        resource_attributes=dict(tr.get("resourceAttributes") or {}),
    )
    if tracing.enabled and not tracing.endpoint:
        raise SpecError("InvalidSpec", "tracing.enabled needs tracing.endpoint")

    npol = _section(spec, "networkPolicy")
    backend = npol.get("backendSelector")
    if backend is not None and not (backend.get("matchLabels") or backend.get("matchExpressions")):
        raise SpecError(
            "InvalidSpec",
            "networkPolicy.backendSelector must select something: an empty selector would open "
            "the internal port to every pod in the namespace",
        )
    for peer in npol.get("publicFrom") or ():
        selectors = {"namespaceSelector", "podSelector"} & set(peer)
        if not selectors and "ipBlock" not in peer:
            raise SpecError(
                "InvalidSpec", "a peer needs a namespaceSelector, a podSelector or an ipBlock"
            )
        if selectors and "ipBlock" in peer:
            raise SpecError("InvalidSpec", "an ipBlock peer cannot also have selectors")
    network_policy = NetworkPolicySpec(
        enabled=bool(npol["enabled"]),
        public_from=tuple(dict(p) for p in npol.get("publicFrom") or ()),
        monitoring_namespace=npol.get("monitoringNamespace"),
        backend_selector=dict(backend) if backend is not None else None,
    )

    mon = (_section(spec, "monitoring").get("podMonitor")) or {}
    monitoring = MonitoringSpec(
        pod_monitor=bool(mon.get("enabled", False)),
        interval=mon.get("interval") or None,
        labels=dict(mon.get("labels") or {}),
    )
    rb = _section(spec, "rebalance")
    rebalance = RebalanceSpec(
        enabled=bool(rb["enabled"]),
        absolute_threshold=int(rb["absoluteThreshold"]),
        relative_threshold_percent=int(rb["relativeThresholdPercent"]),
    )

    return ClusterSpec(
        name=name,
        namespace=namespace,
        paused=bool(spec["paused"]),
        gateway=gateway,
        redis=redis,
        exposure=exposure,
        autoscaling=autoscaling,
        signing_keys=signing_keys,
        auth=auth,
        tracing=tracing,
        network_policy=network_policy,
        monitoring=monitoring,
        rebalance=rebalance,
    )
