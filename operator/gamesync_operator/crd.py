"""The GameSyncCluster CRD, as one source of truth in code (DESIGN §5).

`crd()` builds the CustomResourceDefinition; `python -m gamesync_operator.crd PATH` writes it.
`apply_defaults()` applies the schema's defaults the way the API server does, so the operator
reads the same defaults whether or not a server defaulted the object.
"""

from __future__ import annotations

import copy
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

__all__ = [
    "CRD_FILE",
    "GROUP",
    "KIND",
    "PLURAL",
    "VERSION",
    "apply_defaults",
    "crd",
    "render_yaml",
    "spec_schema",
]

GROUP = "gamesync.nommie.dev"
VERSION = "v1alpha1"
KIND = "GameSyncCluster"
PLURAL = "gamesyncclusters"
SINGULAR = "gamesynccluster"
CRD_FILE = f"charts/gamesync-operator/crds/{PLURAL}.{GROUP}.yaml"

# Go-style durations as CEL's duration() reads them; kept to h/m/s so Python parses them alike.
_DURATION = {"type": "string", "pattern": r"^([0-9]+(h|m|s))+$", "maxLength": 32}
_NAME = {"type": "string", "pattern": r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$", "maxLength": 63}
_QUANTITY_MAP = {
    "type": "object",
    "additionalProperties": {
        "x-kubernetes-int-or-string": True,
        "anyOf": [{"type": "integer"}, {"type": "string"}],
    },
}


def _int(
    default: int | None = None, minimum: int = 0, maximum: int | None = None
) -> dict[str, Any]:
    schema: dict[str, Any] = {"type": "integer", "format": "int32", "minimum": minimum}
    if maximum is not None:
        schema["maximum"] = maximum
    if default is not None:
        schema["default"] = default
    return schema


def _enum(values: list[str], default: str) -> dict[str, Any]:
    return {"type": "string", "enum": values, "default": default}


def _obj(properties: dict[str, Any], **extra: Any) -> dict[str, Any]:
    return {"type": "object", "properties": properties, **extra}


def _gateway() -> dict[str, Any]:
    return _obj(
        {
            "image": {"type": "string", "minLength": 1, "maxLength": 512},
            "imagePullPolicy": _enum(["Always", "IfNotPresent", "Never"], "IfNotPresent"),
            "replicas": _int(2, minimum=0, maximum=1000),
            "shards": _int(1, minimum=1, maximum=64),
            "resources": _obj(
                {"requests": _QUANTITY_MAP, "limits": _QUANTITY_MAP},
                default={
                    "requests": {"cpu": "100m", "memory": "128Mi"},
                    "limits": {"memory": "512Mi"},
                },
            ),
            "logLevel": _enum(["debug", "info", "warning", "error"], "info"),
            "preStopSeconds": _int(5, maximum=300),
            "drainSeconds": _int(30, minimum=1, maximum=3600),
            "terminationGracePeriodSeconds": _int(60, minimum=1, maximum=7200),
            "minReadySeconds": _int(5, maximum=600),
            "maxUnavailable": _int(1, minimum=1, maximum=1000),
            # Connections a second one pod moves away, in a drain or a rebalance (EMQX's
            # evacuation default is 1,000/s per node).
            "evacuationRate": _int(1000, minimum=1, maximum=100_000),
            "pingIntervalSeconds": _int(20, minimum=1, maximum=600),
            "idleTimeoutSeconds": _int(60, minimum=1, maximum=86400),
            # The header the proxy in front of the gateways (ingress, Gateway API route) appends
            # the client's address to: the per-address limits and the abuse penalty key on it.
            "clientAddressHeader": {"type": "string", "pattern": "^[A-Za-z0-9-]{1,64}$"},
            "serviceAccountName": {**_NAME, "maxLength": 253},
            "podAnnotations": {"type": "object", "additionalProperties": {"type": "string"}},
            "publishTokenSecretRef": _secret_key_ref("token"),
        },
        required=["image"],
        **{
            "x-kubernetes-validations": [
                {
                    "rule": "self.terminationGracePeriodSeconds >= "
                    "self.preStopSeconds + self.drainSeconds + 5",
                    "message": "terminationGracePeriodSeconds must cover preStopSeconds + "
                    "drainSeconds + 5 s of margin, or the kubelet kills pods mid-drain",
                    "reason": "FieldValueInvalid",
                    "fieldPath": ".terminationGracePeriodSeconds",
                }
            ]
        },
    )


def _secret_key_ref(default_key: str) -> dict[str, Any]:
    return _obj(
        {
            "name": {**_NAME, "maxLength": 253},
            "key": {"type": "string", "default": default_key, "maxLength": 253},
        },
        required=["name"],
    )


def _redis() -> dict[str, Any]:
    return _obj(
        {
            "mode": _enum(["Standalone", "Cluster"], "Standalone"),
            "urlSecretRef": _secret_key_ref("url"),
        },
        required=["urlSecretRef"],
    )


def _exposure() -> dict[str, Any]:
    parent_ref = _obj(
        {
            "name": {"type": "string", "minLength": 1, "maxLength": 253},
            "namespace": {"type": "string", "maxLength": 63},
            "sectionName": {"type": "string", "maxLength": 253},
        },
        required=["name"],
    )
    return _obj(
        {
            "mode": _enum(["HTTPRoute", "Ingress", "None"], "HTTPRoute"),
            "host": {"type": "string", "maxLength": 253},
            "path": {"type": "string", "default": "/ws", "pattern": "^/", "maxLength": 256},
            "tlsSecretName": {**_NAME, "maxLength": 253},
            "idleTimeoutSeconds": _int(3600, minimum=60, maximum=86400),
            "httpRoute": _obj(
                {"parentRefs": {"type": "array", "items": parent_ref, "maxItems": 16}}
            ),
            "ingress": _obj(
                {
                    "className": {"type": "string", "maxLength": 253},
                    "annotations": {"type": "object", "additionalProperties": {"type": "string"}},
                }
            ),
        },
        default={},
        **{
            "x-kubernetes-validations": [
                {
                    "rule": "!has(self.tlsSecretName) || has(self.host)",
                    "message": "tlsSecretName needs a host",
                },
                {
                    "rule": "self.mode != 'HTTPRoute' || "
                    "(has(self.httpRoute) && has(self.httpRoute.parentRefs) && "
                    "size(self.httpRoute.parentRefs) > 0)",
                    "message": "HTTPRoute exposure needs httpRoute.parentRefs (the Gateway)",
                },
            ]
        },
    )


def _autoscaling() -> dict[str, Any]:
    return _obj(
        {
            "mode": _enum(["Operator", "HPA", "KEDA", "None"], "Operator"),
            "minReplicas": _int(2, minimum=1, maximum=1000),
            "maxReplicas": _int(10, minimum=1, maximum=1000),
            "targetConnectionsPerPod": _int(1000, minimum=1, maximum=1_000_000),
            "scaleDownStabilizationSeconds": _int(300, maximum=86400),
            "scaleDownPeriodSeconds": _int(60, minimum=1, maximum=86400),
            "metricName": {"type": "string", "default": "gamesync_connections", "maxLength": 253},
            "keda": _obj(
                {
                    "serverAddress": {"type": "string", "minLength": 1, "maxLength": 1024},
                    "query": {"type": "string", "maxLength": 4096},
                },
                required=["serverAddress"],
            ),
        },
        default={},
        **{
            "x-kubernetes-validations": [
                {
                    "rule": "self.minReplicas <= self.maxReplicas",
                    "message": "minReplicas must be <= maxReplicas",
                },
                {
                    "rule": "self.mode != 'KEDA' || has(self.keda)",
                    "message": "KEDA autoscaling needs keda.serverAddress (Prometheus)",
                },
            ]
        },
    )


def _signing_keys() -> dict[str, Any]:
    return _obj(
        {
            "algorithm": {
                **_enum(["ES256", "EdDSA", "RS256"], "ES256"),
                "x-kubernetes-validations": [
                    {
                        "rule": "self == oldSelf",
                        "message": "algorithm is immutable; create a new GameSyncCluster instead",
                    }
                ],
            },
            "rotationInterval": {**_DURATION, "default": "720h"},
            "maxTokenLifetime": {**_DURATION, "default": "1h"},
            "clockSkew": {**_DURATION, "default": "60s"},
            "publishLead": {**_DURATION, "default": "5m"},
            "jwksSecretName": {**_NAME, "maxLength": 253},
            "signerSecretName": {**_NAME, "maxLength": 253},
        },
        default={},
        **{
            "x-kubernetes-validations": [
                {
                    "rule": "duration(self.rotationInterval) > duration(self.publishLead) + "
                    "duration(self.maxTokenLifetime) + duration(self.clockSkew)",
                    "message": "rotationInterval must exceed publishLead + token lifetime + skew",
                    "reason": "FieldValueInvalid",
                    "fieldPath": ".rotationInterval",
                }
            ]
        },
    )


def _auth() -> dict[str, Any]:
    return _obj(
        {
            "policy": _enum(["open", "claim", "members", "backend"], "members"),
            "backendUrl": {"type": "string", "maxLength": 2048},
            "audience": {"type": "string", "maxLength": 512},
            "issuer": {"type": "string", "maxLength": 512},
            "allowedOrigins": {
                "type": "array",
                "items": {"type": "string", "maxLength": 512},
                "maxItems": 64,
            },
        },
        default={},
        **{
            "x-kubernetes-validations": [
                {
                    "rule": "self.policy != 'backend' || has(self.backendUrl)",
                    "message": "policy backend needs backendUrl",
                }
            ]
        },
    )


def _tracing() -> dict[str, Any]:
    return _obj(
        {
            "enabled": {"type": "boolean", "default": False},
            "endpoint": {"type": "string", "maxLength": 2048},
            "protocol": _enum(["http/protobuf", "grpc"], "http/protobuf"),
            "sampler": _enum(
                [
                    "parentbased_traceidratio",
                    "traceidratio",
                    "always_on",
                    "always_off",
                    "parentbased_always_on",
                ],
                "parentbased_traceidratio",
            ),
            "ratio": {"type": "number", "minimum": 0, "maximum": 1, "default": 0.05},
            "resourceAttributes": {"type": "object", "additionalProperties": {"type": "string"}},
        },
        default={},
        **{
            "x-kubernetes-validations": [
                {
                    "rule": "!self.enabled || has(self.endpoint)",
                    "message": "tracing.enabled needs an endpoint",
                }
            ]
        },
    )


def _label_selector() -> dict[str, Any]:
    """metav1.LabelSelector, as NetworkPolicy peers take it."""
    expression = _obj(
        {
            "key": {"type": "string", "minLength": 1, "maxLength": 317},
            "operator": {"type": "string", "enum": ["In", "NotIn", "Exists", "DoesNotExist"]},
            "values": {
                "type": "array",
                "items": {"type": "string", "maxLength": 63},
                "maxItems": 64,
            },
        },
        required=["key", "operator"],
    )
    return _obj(
        {
            "matchLabels": {
                "type": "object",
                "additionalProperties": {"type": "string", "maxLength": 63},
                "maxProperties": 32,
            },
            "matchExpressions": {"type": "array", "items": expression, "maxItems": 16},
        },
        **{"x-kubernetes-map-type": "atomic"},
    )


def _selects_something() -> str:
    return (
        "(has(self.matchLabels) && size(self.matchLabels) > 0) || "
        "(has(self.matchExpressions) && size(self.matchExpressions) > 0)"
    )


def _network_policy() -> dict[str, Any]:
    peer = _obj(
        {
            "namespaceSelector": _label_selector(),
            "podSelector": _label_selector(),
            "ipBlock": _obj(
                {
                    "cidr": {"type": "string", "minLength": 1, "maxLength": 64},
                    "except": {
                        "type": "array",
                        "items": {"type": "string", "maxLength": 64},
                        "maxItems": 16,
                    },
                },
                required=["cidr"],
            ),
        },
        **{
            "x-kubernetes-validations": [
                {
                    "rule": "has(self.namespaceSelector) || has(self.podSelector) || "
                    "has(self.ipBlock)",
                    "message": "a peer needs a namespaceSelector, a podSelector or an ipBlock",
                },
                {
                    "rule": "!has(self.ipBlock) || "
                    "!(has(self.namespaceSelector) || has(self.podSelector))",
                    "message": "an ipBlock peer cannot also have selectors",
                },
            ]
        },
    )
    backend = _label_selector()
    backend["x-kubernetes-validations"] = [
        {
            "rule": _selects_something(),
            "message": "backendSelector must select something: an empty selector would open "
            "the internal port to every pod in the namespace",
        }
    ]
    return _obj(
        {
            "enabled": {"type": "boolean", "default": True},
            "publicFrom": {"type": "array", "items": peer, "maxItems": 16},
            "monitoringNamespace": {**_NAME, "maxLength": 63},
            "backendSelector": backend,
        },
        default={},
    )


def _monitoring() -> dict[str, Any]:
    return _obj(
        {
            "podMonitor": _obj(
                {
                    "enabled": {"type": "boolean", "default": False},
                    # Prometheus' duration syntax, as the PodMonitor CRD checks it.
                    "interval": {
                        "type": "string",
                        "pattern": r"^(0|(([0-9]+)h)?(([0-9]+)m)?(([0-9]+)s)?(([0-9]+)ms)?)$",
                        "maxLength": 32,
                    },
                    "labels": {
                        "type": "object",
                        "additionalProperties": {"type": "string", "maxLength": 63},
                        "maxProperties": 16,
                    },
                },
                default={},
            )
        },
        default={},
    )


def _rebalance() -> dict[str, Any]:
    return _obj(
        {
            "enabled": {"type": "boolean", "default": True},
            # A pod is asked to shed toward the fleet mean when it holds more than the mean by
            # both this many connections and this percentage (EMQX's Rebalance thresholds).
            "absoluteThreshold": _int(100, minimum=1, maximum=1_000_000),
            "relativeThresholdPercent": _int(20, minimum=1, maximum=1000),
        },
        default={},
    )


def spec_schema() -> dict[str, Any]:
    """The OpenAPI v3 schema of `spec`."""
    return _obj(
        {
            "paused": {"type": "boolean", "default": False},
            "gateway": _gateway(),
            "redis": _redis(),
            "exposure": _exposure(),
            "autoscaling": _autoscaling(),
            "signingKeys": _signing_keys(),
            "auth": _auth(),
            "tracing": _tracing(),
            "networkPolicy": _network_policy(),
            "monitoring": _monitoring(),
            "rebalance": _rebalance(),
        },
        required=["gateway", "redis"],
    )


def _condition() -> dict[str, Any]:
    return _obj(
        {
            "type": {"type": "string", "maxLength": 316},
            "status": {"type": "string", "enum": ["True", "False", "Unknown"]},
            "reason": {"type": "string", "maxLength": 1024},
            "message": {"type": "string", "maxLength": 32768},
            "lastTransitionTime": {"type": "string", "format": "date-time"},
            "observedGeneration": {"type": "integer", "format": "int64", "minimum": 0},
        },
        required=["type", "status", "lastTransitionTime", "reason", "message"],
    )


def _status_schema() -> dict[str, Any]:
    time = {"type": "string", "format": "date-time"}
    return _obj(
        {
            "observedGeneration": {"type": "integer", "format": "int64"},
            "conditions": {
                "type": "array",
                "items": _condition(),
                "x-kubernetes-list-type": "map",
                "x-kubernetes-list-map-keys": ["type"],
            },
            # Every gateway pod of every shard (the fleet's sums):
            "replicas": {"type": "integer"},
            "shards": {"type": "integer"},
            "readyReplicas": {"type": "integer"},
            "desiredReplicas": {"type": "integer"},
            "labelSelector": {"type": "string"},
            # One shard's pods, the unit of spec.gateway.replicas (the scale subresource's):
            "shardReplicas": {"type": "integer"},
            "shardSelector": {"type": "string"},
            "connections": {"type": "integer"},
            "endpoint": {"type": "string"},
            "runtimeConfigHash": {"type": "string"},
            "signingKeys": _obj(
                {
                    "activeKid": {"type": "string"},
                    "nextKid": {"type": "string"},
                    "previousKids": {
                        "type": "array",
                        "items": _obj({"kid": {"type": "string"}, "retireAt": time}),
                    },
                    "phase": {"type": "string"},
                    "lastRotationTime": time,
                    "nextRotationTime": time,
                    "nextPublishedTime": time,
                    "keyGeneration": {"type": "integer"},
                    "handledRotateRequest": {"type": "string"},
                    "revokedKids": {"type": "array", "items": {"type": "string"}},
                    "lastRevocationTime": time,
                }
            ),
            "autoscaling": _obj(
                {
                    "recommendation": {"type": "integer"},
                    "belowSince": time,
                    "lastScaleTime": time,
                    "owner": {"type": "string"},
                    "reason": {"type": "string"},
                    "pods": {"type": "integer"},
                    "reporting": {"type": "integer"},
                    "message": {"type": "string"},
                }
            ),
            "rebalance": _obj(
                {
                    "reason": {"type": "string"},
                    "message": {"type": "string"},
                    "shedding": {"type": "array", "items": {"type": "string"}},
                    "lastRebalanceTime": time,
                    "nextAfter": time,
                }
            ),
        },
    )


def crd() -> dict[str, Any]:
    """The CustomResourceDefinition of GameSyncCluster."""
    ready = '.status.conditions[?(@.type=="Ready")].status'
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": f"{PLURAL}.{GROUP}"},
        "spec": {
            "group": GROUP,
            "scope": "Namespaced",
            "names": {
                "kind": KIND,
                "listKind": f"{KIND}List",
                "plural": PLURAL,
                "singular": SINGULAR,
                "shortNames": ["gsc"],
                "categories": ["gamesync"],
            },
            "versions": [
                {
                    "name": VERSION,
                    "served": True,
                    "storage": True,
                    "subresources": {
                        "status": {},
                        # Per shard, as spec.gateway.replicas is: an HPA multiplies its
                        # metric's ratio by the pods the selector finds (DESIGN §5).
                        "scale": {
                            "specReplicasPath": ".spec.gateway.replicas",
                            "statusReplicasPath": ".status.shardReplicas",
                            "labelSelectorPath": ".status.shardSelector",
                        },
                    },
                    "additionalPrinterColumns": [
                        {"name": "Ready", "type": "string", "jsonPath": ready},
                        {
                            "name": "Desired",
                            "type": "integer",
                            "jsonPath": ".status.desiredReplicas",
                        },
                        {
                            "name": "Ready replicas",
                            "type": "integer",
                            "jsonPath": ".status.readyReplicas",
                        },
                        {
                            "name": "Connections",
                            "type": "integer",
                            "jsonPath": ".status.connections",
                        },
                        {
                            "name": "Active kid",
                            "type": "string",
                            "jsonPath": ".status.signingKeys.activeKid",
                        },
                        {
                            "name": "Next rotation",
                            "type": "date",
                            "priority": 1,
                            "jsonPath": ".status.signingKeys.nextRotationTime",
                        },
                        {"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"},
                    ],
                    "schema": {
                        "openAPIV3Schema": _obj(
                            {
                                "apiVersion": {"type": "string"},
                                "kind": {"type": "string"},
                                "metadata": {"type": "object"},
                                "spec": spec_schema(),
                                "status": _status_schema(),
                            },
                            required=["spec"],
                        )
                    },
                }
            ],
        },
    }


def apply_defaults(schema: Mapping[str, Any], value: Any) -> Any:
    """Structural defaulting as the API server does it: absent fields get their schema default.

    Defaults apply recursively, also inside a default that was just filled in.
    """
    if not isinstance(value, dict) or schema.get("type") != "object":
        return value
    result = dict(value)
    for name, prop in schema.get("properties", {}).items():
        if name not in result and "default" in prop:
            result[name] = copy.deepcopy(prop["default"])
        if name in result:
            result[name] = apply_defaults(prop, result[name])
    extra = schema.get("additionalProperties")
    if isinstance(extra, dict):
        for name in result.keys() - schema.get("properties", {}).keys():
            result[name] = apply_defaults(extra, result[name])
    return result


def render_yaml() -> str:
    """The CRD as the YAML file the chart ships."""
    header = f"# Generated by `python -m gamesync_operator.crd {CRD_FILE}`; do not edit.\n"
    return header + yaml.safe_dump(crd(), sort_keys=False, width=100)


def main(argv: list[str]) -> int:
    """Write the CRD YAML to the path given (default: the chart's crds/ file)."""
    path = Path(argv[0] if argv else CRD_FILE)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(render_yaml())
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
