"""Desired state, pure: a ClusterSpec in, the children it should own out (DESIGN §5, §7).

Nothing here talks to the API; `handlers` compares these objects with what exists.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from typing import Any

import kopf

from gamesync_operator.crd import GROUP, KIND, VERSION
from gamesync_operator.names import (
    INTERNAL_PORT,
    PUBLIC_PORT,
    SHARD_LABEL,
    internal_service_name,
    label_selector,
    labels,
    selector_labels,
    shard_labels,
    shard_name,
)
from gamesync_operator.network import OperatorPeer, network_policy
from gamesync_operator.spec import ClusterSpec

__all__ = [
    "INTERNAL_PORT",
    "KEYS_DIR",
    "PUBLIC_PORT",
    "READINESS_PERIOD",
    "RUNTIME_DIR",
    "Owner",
    "children",
    "configmap",
    "deployment",
    "hpa",
    "http_route",
    "ingress",
    "internal_service",
    "label_selector",
    "pdb",
    "pod_monitor",
    "runtime_config",
    "runtime_config_hash",
    "scaled_object",
    "selector_labels",
    "service",
    "shard_service",
]

#: Replicas for the gateway Deployments: one count for every shard, one per shard (in shard
#: order: an autoscaler's live value held for each), or None (an autoscaler owns them all).
Replicas = int | None | tuple[int | None, ...]

KEYS_DIR = "/etc/gamesync/keys"
#: Seconds between readiness probes: how soon a draining or shedding pod leaves the Service.
READINESS_PERIOD = 5
RUNTIME_DIR = "/etc/gamesync/runtime"
RUNTIME_KEY = "runtime.json"


@dataclass(frozen=True)
class Owner:
    """The GameSyncCluster that owns the children (ownerReferences need its uid)."""

    name: str
    namespace: str
    uid: str

    def body(self) -> dict[str, Any]:
        return {
            "apiVersion": f"{GROUP}/{VERSION}",
            "kind": KIND,
            "metadata": {"name": self.name, "namespace": self.namespace, "uid": self.uid},
        }


def _meta(spec: ClusterSpec, name: str) -> dict[str, Any]:
    return {"name": name, "namespace": spec.namespace, "labels": labels(spec.name)}


def runtime_config(spec: ClusterSpec) -> bytes:
    """The runtime config file (DESIGN §7), canonical JSON so that its hash is stable."""
    tracing: dict[str, Any] = {"enabled": spec.tracing.enabled}
    if spec.tracing.enabled:
        tracing.update(
            {
                "endpoint": spec.tracing.endpoint,
                "protocol": spec.tracing.protocol,
                "sampler": spec.tracing.sampler,
                "ratio": spec.tracing.ratio,
                "resourceAttributes": {
                    "service.namespace": spec.namespace,
                    "gamesync.cluster": spec.name,
                    **spec.tracing.resource_attributes,
                },
            }
        )
    document = {"tracing": tracing, "logLevel": spec.gateway.log_level}
    return json.dumps(document, sort_keys=True, separators=(",", ":")).encode()


def runtime_config_hash(spec: ClusterSpec) -> str:
    """The hash a gateway reports in /v1/stats once it applied this runtime config."""
    return "sha256:" + hashlib.sha256(runtime_config(spec)).hexdigest()


def configmap(spec: ClusterSpec) -> dict[str, Any]:
    """The runtime ConfigMap, mounted as a directory so gateways see changes live."""
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": _meta(spec, f"{spec.name}-runtime"),
        "data": {RUNTIME_KEY: runtime_config(spec).decode()},
    }


def _env(spec: ClusterSpec, shard: int | None = None) -> list[dict[str, Any]]:
    gw, auth = spec.gateway, spec.auth
    env: list[dict[str, Any]] = [
        {"name": "GAMESYNC_POD_NAME", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
        # Both listeners bind the pod's interfaces: kubelet probes, the operator and Prometheus
        # reach the internal port at the pod IP. Who may is the NetworkPolicy's job.
        {"name": "GAMESYNC_HOST", "value": "0.0.0.0"},  # noqa: S104 - a pod listens on its own IP
        {"name": "GAMESYNC_INTERNAL_HOST", "value": "0.0.0.0"},  # noqa: S104 - as above
        {"name": "GAMESYNC_PORT", "value": str(PUBLIC_PORT)},
        {"name": "GAMESYNC_INTERNAL_PORT", "value": str(INTERNAL_PORT)},
        {
            "name": "GAMESYNC_BROKER",
            "valueFrom": {"secretKeyRef": {"name": spec.redis.url.name, "key": spec.redis.url.key}},
        },
        {"name": "GAMESYNC_KEYS", "value": f"{KEYS_DIR}/jwks.json"},
        {"name": "GAMESYNC_RUNTIME_CONFIG", "value": f"{RUNTIME_DIR}/{RUNTIME_KEY}"},
        {"name": "GAMESYNC_AUTHZ", "value": auth.policy},
        {"name": "GAMESYNC_DRAIN_SECONDS", "value": str(gw.drain_seconds)},
        {"name": "GAMESYNC_EVACUATION_RATE", "value": str(gw.evacuation_rate)},
        # Tokens living longer than the backends may sign them for are refused (the same
        # lifetime the key rotation's retire time assumes).
        {
            "name": "GAMESYNC_MAX_TOKEN_LIFETIME",
            "value": str(spec.signing_keys.max_token_lifetime),
        },
        {"name": "GAMESYNC_PING_INTERVAL", "value": str(gw.ping_interval_seconds)},
        {"name": "GAMESYNC_IDLE_TIMEOUT", "value": str(gw.idle_timeout_seconds)},
    ]
    optional = {
        "GAMESYNC_AUTHZ_URL": auth.backend_url,
        "GAMESYNC_AUDIENCE": auth.audience,
        "GAMESYNC_ISSUER": auth.issuer,
        "GAMESYNC_ALLOWED_ORIGINS": ",".join(auth.allowed_origins) or None,
        # Behind the route the peer is the proxy: with its header the gateways key their
        # per-address limits (unauthenticated connections, the abuse penalty) on the client.
        "GAMESYNC_CLIENT_ADDRESS_HEADER": gw.client_address_header,
    }
    env.extend({"name": k, "value": v} for k, v in optional.items() if v)
    if gw.publish_token is not None:
        ref = {"name": gw.publish_token.name, "key": gw.publish_token.key}
        env.append({"name": "GAMESYNC_PUBLISH_TOKEN", "valueFrom": {"secretKeyRef": ref}})
    if shard is not None:
        env.append({"name": "GAMESYNC_SHARD", "value": str(shard)})
        env.append({"name": "GAMESYNC_SHARDS", "value": str(gw.shards)})
    return env


def deployment(spec: ClusterSpec, replicas: int | None, shard: int | None = None) -> dict[str, Any]:
    """The gateway Deployment (of one shard, with `shard`); `replicas` None leaves them to an
    HPA or KEDA."""
    gw = spec.gateway
    pod_labels = labels(spec.name)
    if shard is not None:
        pod_labels[SHARD_LABEL] = str(shard)
    container: dict[str, Any] = {
        "name": "gateway",
        "image": gw.image,
        "imagePullPolicy": gw.image_pull_policy,
        "args": ["gateway"],
        "ports": [
            {"name": "http", "containerPort": PUBLIC_PORT, "protocol": "TCP"},
            {"name": "internal", "containerPort": INTERNAL_PORT, "protocol": "TCP"},
        ],
        "env": _env(spec, shard),
        "readinessProbe": {
            "httpGet": {"path": "/readyz", "port": "internal"},
            "periodSeconds": READINESS_PERIOD,
            "failureThreshold": 1,
        },
        "livenessProbe": {
            "httpGet": {"path": "/healthz", "port": "internal"},
            "periodSeconds": 10,
            "failureThreshold": 3,
        },
        # The endpoints controller removes the pod concurrently with preStop; the sleep gives it
        # time before SIGTERM starts the drain (native sleep action: no binary in the image).
        "lifecycle": {"preStop": {"sleep": {"seconds": gw.pre_stop_seconds}}},
        "resources": {
            k: {q: str(v) for q, v in qs.items()} for k, qs in gw.resources.items() if qs
        },
        "securityContext": {
            "allowPrivilegeEscalation": False,
            "readOnlyRootFilesystem": True,
            "runAsNonRoot": True,
            "capabilities": {"drop": ["ALL"]},
        },
        "volumeMounts": [
            # Directories, never subPath: the kubelet swaps a symlink and subPath would pin the
            # old file (kubernetes#50345).
            {"name": "keys", "mountPath": KEYS_DIR, "readOnly": True},
            {"name": "runtime", "mountPath": RUNTIME_DIR, "readOnly": True},
            {"name": "tmp", "mountPath": "/tmp"},  # noqa: S108 - an emptyDir, not the host's /tmp
        ],
    }
    pod_spec: dict[str, Any] = {
        "automountServiceAccountToken": False,
        "terminationGracePeriodSeconds": gw.termination_grace_period_seconds,
        "securityContext": {
            "runAsNonRoot": True,
            "runAsUser": 65532,
            "runAsGroup": 65532,
            "fsGroup": 65532,
            "seccompProfile": {"type": "RuntimeDefault"},
        },
        "containers": [container],
        "volumes": [
            {"name": "keys", "secret": {"secretName": spec.signing_keys.jwks_secret_name}},
            {"name": "runtime", "configMap": {"name": f"{spec.name}-runtime"}},
            {"name": "tmp", "emptyDir": {"sizeLimit": "64Mi"}},
        ],
        "topologySpreadConstraints": [
            {
                "maxSkew": 1,
                "topologyKey": "kubernetes.io/hostname",
                "whenUnsatisfiable": "ScheduleAnyway",
                "labelSelector": {"matchLabels": shard_labels(spec.name, shard)},
            }
        ],
    }
    if gw.service_account_name:
        pod_spec["serviceAccountName"] = gw.service_account_name
    body: dict[str, Any] = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": _meta(spec, shard_name(spec.name, shard)),
        "spec": {
            "selector": {"matchLabels": shard_labels(spec.name, shard)},
            "minReadySeconds": gw.min_ready_seconds,
            "revisionHistoryLimit": 5,
            # A new pod must be ready before an old one drains: never fewer sockets' worth of pods.
            "strategy": {
                "type": "RollingUpdate",
                "rollingUpdate": {"maxUnavailable": 0, "maxSurge": "25%"},
            },
            "template": {
                "metadata": {
                    "labels": pod_labels,
                    "annotations": {
                        **gw.pod_annotations,
                        "prometheus.io/scrape": "true",
                        "prometheus.io/port": str(INTERNAL_PORT),
                    },
                },
                "spec": pod_spec,
            },
        },
    }
    if replicas is not None:
        body["spec"]["replicas"] = replicas
    return body


def service(spec: ClusterSpec) -> dict[str, Any]:
    """The public ClusterIP Service (port 8000 only); appProtocol says it speaks websocket."""
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": _meta(spec, spec.name),
        "spec": {
            "type": "ClusterIP",
            "selector": selector_labels(spec.name),
            "ports": [
                {
                    "name": "http",
                    "port": PUBLIC_PORT,
                    "targetPort": "http",
                    "protocol": "TCP",
                    "appProtocol": "kubernetes.io/ws",
                }
            ],
        },
    }


def shard_service(spec: ClusterSpec, shard: int) -> dict[str, Any]:
    """One shard's public Service: the backend of the route's `/ws/s/{shard}` rule."""
    body = service(spec)
    body["metadata"] = _meta(spec, shard_name(spec.name, shard))
    body["spec"]["selector"] = shard_labels(spec.name, shard)
    return body


def _affine_prefixes(spec: ClusterSpec, shard: int) -> list[str]:
    """The path prefixes of one shard's game-affine endpoints that the exposure routes."""
    covered = spec.exposure.path.rstrip("/")
    wanted = [f"/ws/s/{shard}", f"/sse/s/{shard}"]
    # Only what the spread rule exposes too: `/ws` routes websockets, `/` routes both.
    return [p for p in wanted if p == covered or p.startswith(covered + "/")]


def internal_service(spec: ClusterSpec) -> dict[str, Any]:
    """The internal ClusterIP Service (port 9000: metrics, stats, publish), never routed to."""
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": _meta(spec, internal_service_name(spec.name)),
        "spec": {
            "type": "ClusterIP",
            "selector": selector_labels(spec.name),
            "ports": [
                {
                    "name": "internal",
                    "port": INTERNAL_PORT,
                    "targetPort": "internal",
                    "protocol": "TCP",
                }
            ],
        },
    }


def http_route(spec: ClusterSpec) -> dict[str, Any]:
    """Gateway API HTTPRoute; request timeout 0s (disabled) so sockets are not cut (GEP-1742)."""
    ex = spec.exposure
    parent_refs = []
    for ref in ex.parent_refs:
        entry: dict[str, Any] = {
            "group": "gateway.networking.k8s.io",
            "kind": "Gateway",
            "name": ref.name,
        }
        if ref.namespace:
            entry["namespace"] = ref.namespace
        if ref.section_name:
            entry["sectionName"] = ref.section_name
        parent_refs.append(entry)
    rules: list[dict[str, Any]] = [
        {
            "matches": [{"path": {"type": "PathPrefix", "value": ex.path}}],
            "backendRefs": [{"name": spec.name, "port": PUBLIC_PORT}],
            "timeouts": {"request": "0s"},
        }
    ]
    if spec.gateway.shards > 1:
        # The longest matching prefix wins (Gateway API: HTTPRoute rule precedence), and a
        # prefix matches whole path elements, so `/ws/s/1` never takes `/ws/s/10/...`.
        rules.append(
            {
                "matches": [{"path": {"type": "Exact", "value": "/v1/shards"}}],
                "backendRefs": [{"name": spec.name, "port": PUBLIC_PORT}],
            }
        )
        for shard in range(spec.gateway.shards):
            rules.append(
                {
                    "matches": [
                        {"path": {"type": "PathPrefix", "value": prefix}}
                        for prefix in _affine_prefixes(spec, shard)
                    ],
                    "backendRefs": [{"name": shard_name(spec.name, shard), "port": PUBLIC_PORT}],
                    "timeouts": {"request": "0s"},
                }
            )
    route_spec: dict[str, Any] = {"parentRefs": parent_refs, "rules": rules}
    if ex.host:
        route_spec["hostnames"] = [ex.host]
    return {
        "apiVersion": "gateway.networking.k8s.io/v1",
        "kind": "HTTPRoute",
        "metadata": _meta(spec, spec.name),
        "spec": route_spec,
    }


def ingress(spec: ClusterSpec) -> dict[str, Any]:
    """networking.k8s.io Ingress with proxy timeouts above the websocket idle time."""
    ex = spec.exposure
    timeout = str(ex.idle_timeout_seconds)
    annotations = {
        "nginx.ingress.kubernetes.io/proxy-read-timeout": timeout,
        "nginx.ingress.kubernetes.io/proxy-send-timeout": timeout,
        **ex.ingress_annotations,
    }
    paths = [
        {
            "path": ex.path,
            "pathType": "Prefix",
            "backend": {"service": {"name": spec.name, "port": {"name": "http"}}},
        }
    ]
    if spec.gateway.shards > 1:
        # The longest matching path wins; Prefix matches whole path elements.
        paths.append(
            {
                "path": "/v1/shards",
                "pathType": "Exact",
                "backend": {"service": {"name": spec.name, "port": {"name": "http"}}},
            }
        )
        for shard in range(spec.gateway.shards):
            backend = {"service": {"name": shard_name(spec.name, shard), "port": {"name": "http"}}}
            paths.extend(
                {"path": prefix, "pathType": "Prefix", "backend": backend}
                for prefix in _affine_prefixes(spec, shard)
            )
    rule: dict[str, Any] = {"http": {"paths": paths}}
    if ex.host:
        rule["host"] = ex.host
    ingress_spec: dict[str, Any] = {"rules": [rule]}
    if ex.ingress_class_name:
        ingress_spec["ingressClassName"] = ex.ingress_class_name
    if ex.tls_secret_name and ex.host:
        ingress_spec["tls"] = [{"hosts": [ex.host], "secretName": ex.tls_secret_name}]
    return {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "Ingress",
        "metadata": {**_meta(spec, spec.name), "annotations": annotations},
        "spec": ingress_spec,
    }


def pdb(spec: ClusterSpec) -> dict[str, Any]:
    """PodDisruptionBudget for evictions (node drains); rollouts and scale-in bypass it."""
    return {
        "apiVersion": "policy/v1",
        "kind": "PodDisruptionBudget",
        "metadata": _meta(spec, spec.name),
        "spec": {
            "maxUnavailable": spec.gateway.max_unavailable,
            "selector": {"matchLabels": selector_labels(spec.name)},
            "unhealthyPodEvictionPolicy": "AlwaysAllow",
        },
    }


def _behavior(spec: ClusterSpec) -> dict[str, Any]:
    au = spec.autoscaling
    # Scale up fast, scale down one pod per period: every removed pod is a reconnect wave.
    return {
        "scaleUp": {
            "stabilizationWindowSeconds": 0,
            "selectPolicy": "Max",
            "policies": [
                {"type": "Percent", "value": 100, "periodSeconds": 15},
                {"type": "Pods", "value": 4, "periodSeconds": 15},
            ],
        },
        "scaleDown": {
            "stabilizationWindowSeconds": au.scale_down_stabilization_seconds,
            "selectPolicy": "Min",
            "policies": [
                {"type": "Pods", "value": 1, "periodSeconds": au.scale_down_period_seconds}
            ],
        },
    }


def hpa(spec: ClusterSpec, shard: int | None = None) -> dict[str, Any]:
    """autoscaling/v2 HPA on the per-pod connections metric (needs a custom-metrics adapter);
    one per shard, each scaling its shard's Deployment."""
    au = spec.autoscaling
    target = shard_name(spec.name, shard)
    return {
        "apiVersion": "autoscaling/v2",
        "kind": "HorizontalPodAutoscaler",
        "metadata": _meta(spec, target),
        "spec": {
            "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": target},
            "minReplicas": au.min_replicas,
            "maxReplicas": au.max_replicas,
            "metrics": [
                {
                    "type": "Pods",
                    "pods": {
                        "metric": {"name": au.metric_name},
                        "target": {
                            "type": "AverageValue",
                            "averageValue": str(au.target_connections_per_pod),
                        },
                    },
                }
            ],
            "behavior": _behavior(spec),
        },
    }


def scaled_object(spec: ClusterSpec, shard: int | None = None) -> dict[str, Any]:
    """KEDA ScaledObject with a Prometheus trigger on total connections (of one shard's pods,
    with `shard`: each shard is sized by the same policy, on its own load)."""
    au = spec.autoscaling
    target = shard_name(spec.name, shard)
    selector = f'namespace="{spec.namespace}",pod=~"{target}-.*"'
    query = au.keda_query or f"sum({au.metric_name}{{{selector}}})"
    return {
        "apiVersion": "keda.sh/v1alpha1",
        "kind": "ScaledObject",
        "metadata": _meta(spec, target),
        "spec": {
            "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": target},
            "minReplicaCount": au.min_replicas,
            "maxReplicaCount": au.max_replicas,
            "advanced": {"horizontalPodAutoscalerConfig": {"behavior": _behavior(spec)}},
            "triggers": [
                {
                    "type": "prometheus",
                    "metadata": {
                        "serverAddress": au.keda_server_address,
                        "query": query,
                        "threshold": str(au.target_connections_per_pod),
                    },
                }
            ],
        },
    }


def pod_monitor(spec: ClusterSpec) -> dict[str, Any]:
    """Prometheus Operator PodMonitor for the internal port's /metrics.

    The job is `gamesync-gateway` (from the pods' app.kubernetes.io/name), as the chart's alert
    rules and dashboard expect; every target is labelled with its namespace and pod.
    """
    mon = spec.monitoring
    endpoint: dict[str, Any] = {
        "port": "internal",
        "path": "/metrics",
        "relabelings": [
            {
                "action": "replace",
                "sourceLabels": ["__meta_kubernetes_namespace"],
                "targetLabel": "namespace",
            },
            {
                "action": "replace",
                "sourceLabels": ["__meta_kubernetes_pod_name"],
                "targetLabel": "pod",
            },
        ],
    }
    if mon.interval:
        endpoint["interval"] = mon.interval
    meta = _meta(spec, spec.name)
    meta["labels"] = {**mon.labels, **meta["labels"]}
    return {
        "apiVersion": "monitoring.coreos.com/v1",
        "kind": "PodMonitor",
        "metadata": meta,
        "spec": {
            "jobLabel": "app.kubernetes.io/name",
            "selector": {"matchLabels": selector_labels(spec.name)},
            "namespaceSelector": {"matchNames": [spec.namespace]},
            "podMetricsEndpoints": [endpoint],
        },
    }


def _shard_replicas(replicas: Replicas, position: int) -> int | None:
    if isinstance(replicas, tuple):
        return replicas[position] if position < len(replicas) else None
    return replicas


def children(
    spec: ClusterSpec, owner: Owner, replicas: Replicas, operator: OperatorPeer | None = None
) -> list[dict[str, Any]]:
    """Every child the cluster should own right now, adopted (ownerReferences, labels).

    The key Secrets are not here: their content is decided by `rotation`, not by the spec.
    `operator` is the operator's own pods, let through to the internal port. With
    `spec.gateway.shards` K above 1 there are K Deployments and K shard Services besides the
    Service of every pod (the spread path); the PDB, the internal Service, the NetworkPolicy
    and the PodMonitor select every pod of every shard.
    """
    shards = spec.gateway.shard_indexes
    objs = [configmap(spec)]
    objs += [deployment(spec, _shard_replicas(replicas, i), s) for i, s in enumerate(shards)]
    objs.append(service(spec))
    objs += [shard_service(spec, s) for s in shards if s is not None]
    objs += [internal_service(spec), pdb(spec)]
    if spec.network_policy.enabled:
        objs.append(network_policy(spec, operator))
    if spec.exposure.mode == "HTTPRoute":
        objs.append(http_route(spec))
    elif spec.exposure.mode == "Ingress":
        objs.append(ingress(spec))
    if spec.autoscaling.mode == "HPA":
        objs += [hpa(spec, s) for s in shards]
    elif spec.autoscaling.mode == "KEDA":
        objs += [scaled_object(spec, s) for s in shards]
    if spec.monitoring.pod_monitor:
        objs.append(pod_monitor(spec))
    adopt(objs, owner)
    return objs


def adopt(objs: list[dict[str, Any]], owner: Owner) -> None:
    """Set the owner reference (controller, blockOwnerDeletion) on each object, in place."""
    body: Any = owner.body()  # kopf accepts any mapping-like body
    kopf.adopt(objs, owner=body, strict=True)
