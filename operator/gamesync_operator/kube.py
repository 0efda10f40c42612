"""Kubernetes API access through the official generated asyncio client, `kubernetes.aio`.

`kubernetes.aio` ships inside the pinned `kubernetes` package: the typed per-kind API classes
(`AppsV1Api`, `CoreV1Api`, ...) generated from the same OpenAPI spec as the sync client, on
aiohttp, so the operator awaits them on kopf's event loop with no thread pool. Responses are read
raw (`*_without_preload_content`): the pure modules get exactly what the server stored,
`managedFields` included, as plain dicts.

Children are written with server-side apply under the field manager `gamesync-operator`
(`apply`); a conflict with another field manager is raised as `ApplyConflict`, never forced here.
"""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import aiohttp
import pydantic
from kubernetes.aio import client
from kubernetes.aio.config import ConfigException, load_incluster_config, load_kube_config

from gamesync_operator.crd import GROUP, KIND, PLURAL, VERSION
from gamesync_operator.errors import ApiError
from gamesync_operator.ownership import FIELD_MANAGER

__all__ = [
    "CLUSTERS",
    "CONFIGMAPS",
    "DEPLOYMENTS",
    "EVENTS",
    "FIELD_MANAGER",
    "HPAS",
    "HTTPROUTES",
    "INGRESSES",
    "NETWORKPOLICIES",
    "PDBS",
    "PODMONITORS",
    "PODS",
    "SCALEDOBJECTS",
    "SECRETS",
    "SERVICES",
    "ApplyConflict",
    "Configurator",
    "Conflict",
    "Kube",
    "Resource",
    "load_configuration",
    "resource_of",
]

_APPLY = "application/apply-patch+yaml"
_MERGE = "application/merge-patch+json"
_JSON_PATCH = "application/json-patch+json"
_USER_AGENT = "gamesync-operator"

#: Builds the client configuration (server, credentials); tests point it at a mock server.
Configurator = Callable[[], Awaitable[client.Configuration]]


@dataclass(frozen=True)
class Resource:
    """A namespaced API resource."""

    group: str
    version: str
    plural: str
    kind: str

    @property
    def api_version(self) -> str:
        return f"{self.group}/{self.version}" if self.group else self.version


CLUSTERS = Resource(GROUP, VERSION, PLURAL, KIND)
DEPLOYMENTS = Resource("apps", "v1", "deployments", "Deployment")
SERVICES = Resource("", "v1", "services", "Service")
CONFIGMAPS = Resource("", "v1", "configmaps", "ConfigMap")
SECRETS = Resource("", "v1", "secrets", "Secret")
PODS = Resource("", "v1", "pods", "Pod")
PDBS = Resource("policy", "v1", "poddisruptionbudgets", "PodDisruptionBudget")
INGRESSES = Resource("networking.k8s.io", "v1", "ingresses", "Ingress")
NETWORKPOLICIES = Resource("networking.k8s.io", "v1", "networkpolicies", "NetworkPolicy")
HTTPROUTES = Resource("gateway.networking.k8s.io", "v1", "httproutes", "HTTPRoute")
HPAS = Resource("autoscaling", "v2", "horizontalpodautoscalers", "HorizontalPodAutoscaler")
SCALEDOBJECTS = Resource("keda.sh", "v1alpha1", "scaledobjects", "ScaledObject")
PODMONITORS = Resource("monitoring.coreos.com", "v1", "podmonitors", "PodMonitor")
EVENTS = Resource("", "v1", "events", "Event")

_BY_KIND = {
    (r.api_version, r.kind): r
    for r in (
        DEPLOYMENTS,
        SERVICES,
        CONFIGMAPS,
        SECRETS,
        PODS,
        PDBS,
        INGRESSES,
        NETWORKPOLICIES,
        HTTPROUTES,
        HPAS,
        SCALEDOBJECTS,
        PODMONITORS,
        EVENTS,
    )
}


def resource_of(obj: Mapping[str, Any]) -> Resource:
    """The Resource an object's apiVersion and kind belong to."""
    return _BY_KIND[(obj["apiVersion"], obj["kind"])]


@dataclass(frozen=True)
class Conflict:
    """One field another manager owns with a different value than an apply asked for."""

    field: str
    manager: str


class ApplyConflict(ApiError):
    """A server-side apply was refused because other managers own some of its fields."""

    def __init__(self, message: str, conflicts: tuple[Conflict, ...]) -> None:
        super().__init__(409, "Conflict", message)
        self.conflicts = conflicts


_CONFLICT_WITH = re.compile(r'conflict with "([^"]+)"')


def _conflicts(payload: Mapping[str, Any]) -> tuple[Conflict, ...]:
    """The (field, manager) pairs of a server-side apply conflict Status."""
    out = []
    for cause in (payload.get("details") or {}).get("causes") or []:
        if cause.get("type") != "FieldManagerConflict":
            continue
        match = _CONFLICT_WITH.search(str(cause.get("message", "")))
        out.append(Conflict(str(cause.get("field", "")), match.group(1) if match else "?"))
    return tuple(out)


async def load_configuration() -> client.Configuration:
    """In-cluster service account (token re-read as it rotates), else the kubeconfig."""
    configuration = client.Configuration()
    try:
        # The config loaders are untyped in the generated package.
        load_incluster_config(client_configuration=configuration)  # type: ignore[no-untyped-call]
    except ConfigException:
        try:
            await load_kube_config(client_configuration=configuration)  # type: ignore[no-untyped-call]
        except ConfigException as exc:
            message = f"no in-cluster or kubeconfig credentials: {exc}"
            raise ApiError(0, "NoCredentials", message) from exc
    return configuration


Call = Callable[..., Awaitable[Any]]


@dataclass(frozen=True)
class _Ops:
    """One resource's verbs, with uniform arguments over typed and custom-object APIs."""

    read: Callable[[str, str], Awaitable[Any]]  # (namespace, name)
    list: Callable[[str, str | None], Awaitable[Any]]  # (namespace, label selector)
    create: Callable[[str, Any], Awaitable[Any]]  # (namespace, body)
    patch: Callable[[str, str, Any, str, bool | None], Awaitable[Any]]  # (.., type, force)
    delete: Callable[[str, str], Awaitable[Any]]  # (namespace, name)


def _typed(read: Call, list_: Call, create: Call, patch: Call, delete: Call) -> _Ops:
    """Verbs of a built-in kind, from its generated `*_without_preload_content` methods."""
    return _Ops(
        read=lambda ns, name: read(name, ns),
        list=lambda ns, selector: list_(ns, label_selector=selector),
        create=lambda ns, body: create(ns, body, field_manager=FIELD_MANAGER),
        patch=lambda ns, name, body, ctype, force: patch(
            name, ns, body, field_manager=FIELD_MANAGER, force=force, _content_type=ctype
        ),
        delete=lambda ns, name: delete(name, ns),
    )


def _custom(api: client.CustomObjectsApi, res: Resource) -> _Ops:
    """Verbs of a custom resource (Gateway API, KEDA, our own) through CustomObjectsApi."""
    g, v, p = res.group, res.version, res.plural
    return _Ops(
        read=lambda ns, name: api.get_namespaced_custom_object_without_preload_content(
            g, v, ns, p, name
        ),
        list=lambda ns, selector: api.list_namespaced_custom_object_without_preload_content(
            g, v, ns, p, label_selector=selector
        ),
        create=lambda ns, body: api.create_namespaced_custom_object_without_preload_content(
            g, v, ns, p, body, field_manager=FIELD_MANAGER
        ),
        patch=lambda ns, name, body, ctype, force: (
            api.patch_namespaced_custom_object_without_preload_content(
                g,
                v,
                ns,
                p,
                name,
                body,
                field_manager=FIELD_MANAGER,
                force=force,
                _content_type=ctype,
            )
        ),
        delete=lambda ns, name: api.delete_namespaced_custom_object_without_preload_content(
            g, v, ns, p, name
        ),
    )


def _operations(api: client.ApiClient) -> dict[Resource, _Ops]:
    """Every resource the operator touches, bound to one ApiClient."""
    apps = client.AppsV1Api(api)
    core = client.CoreV1Api(api)
    policy = client.PolicyV1Api(api)
    networking = client.NetworkingV1Api(api)
    autoscaling = client.AutoscalingV2Api(api)
    custom = client.CustomObjectsApi(api)
    ops = {
        DEPLOYMENTS: _typed(
            apps.read_namespaced_deployment_without_preload_content,
            apps.list_namespaced_deployment_without_preload_content,
            apps.create_namespaced_deployment_without_preload_content,
            apps.patch_namespaced_deployment_without_preload_content,
            apps.delete_namespaced_deployment_without_preload_content,
        ),
        SERVICES: _typed(
            core.read_namespaced_service_without_preload_content,
            core.list_namespaced_service_without_preload_content,
            core.create_namespaced_service_without_preload_content,
            core.patch_namespaced_service_without_preload_content,
            core.delete_namespaced_service_without_preload_content,
        ),
        CONFIGMAPS: _typed(
            core.read_namespaced_config_map_without_preload_content,
            core.list_namespaced_config_map_without_preload_content,
            core.create_namespaced_config_map_without_preload_content,
            core.patch_namespaced_config_map_without_preload_content,
            core.delete_namespaced_config_map_without_preload_content,
        ),
        SECRETS: _typed(
            core.read_namespaced_secret_without_preload_content,
            core.list_namespaced_secret_without_preload_content,
            core.create_namespaced_secret_without_preload_content,
            core.patch_namespaced_secret_without_preload_content,
            core.delete_namespaced_secret_without_preload_content,
        ),
        PODS: _typed(
            core.read_namespaced_pod_without_preload_content,
            core.list_namespaced_pod_without_preload_content,
            core.create_namespaced_pod_without_preload_content,
            core.patch_namespaced_pod_without_preload_content,
            core.delete_namespaced_pod_without_preload_content,
        ),
        PDBS: _typed(
            policy.read_namespaced_pod_disruption_budget_without_preload_content,
            policy.list_namespaced_pod_disruption_budget_without_preload_content,
            policy.create_namespaced_pod_disruption_budget_without_preload_content,
            policy.patch_namespaced_pod_disruption_budget_without_preload_content,
            policy.delete_namespaced_pod_disruption_budget_without_preload_content,
        ),
        INGRESSES: _typed(
            networking.read_namespaced_ingress_without_preload_content,
            networking.list_namespaced_ingress_without_preload_content,
            networking.create_namespaced_ingress_without_preload_content,
            networking.patch_namespaced_ingress_without_preload_content,
            networking.delete_namespaced_ingress_without_preload_content,
        ),
        NETWORKPOLICIES: _typed(
            networking.read_namespaced_network_policy_without_preload_content,
            networking.list_namespaced_network_policy_without_preload_content,
            networking.create_namespaced_network_policy_without_preload_content,
            networking.patch_namespaced_network_policy_without_preload_content,
            networking.delete_namespaced_network_policy_without_preload_content,
        ),
        HPAS: _typed(
            autoscaling.read_namespaced_horizontal_pod_autoscaler_without_preload_content,
            autoscaling.list_namespaced_horizontal_pod_autoscaler_without_preload_content,
            autoscaling.create_namespaced_horizontal_pod_autoscaler_without_preload_content,
            autoscaling.patch_namespaced_horizontal_pod_autoscaler_without_preload_content,
            autoscaling.delete_namespaced_horizontal_pod_autoscaler_without_preload_content,
        ),
        EVENTS: _typed(
            core.read_namespaced_event_without_preload_content,
            core.list_namespaced_event_without_preload_content,
            core.create_namespaced_event_without_preload_content,
            core.patch_namespaced_event_without_preload_content,
            core.delete_namespaced_event_without_preload_content,
        ),
    }
    for res in (CLUSTERS, HTTPROUTES, SCALEDOBJECTS, PODMONITORS):
        ops[res] = _custom(custom, res)
    return ops


def _status_patch(api: client.ApiClient) -> Callable[[str, str, Any], Awaitable[Any]]:
    custom = client.CustomObjectsApi(api)
    return lambda ns, name, body: (
        custom.patch_namespaced_custom_object_status_without_preload_content(
            GROUP,
            VERSION,
            ns,
            PLURAL,
            name,
            body,
            field_manager=FIELD_MANAGER,
            _content_type=_MERGE,
        )
    )


class Kube:
    """Dicts in, dicts out; every failure is an ApiError carrying the server's reason."""

    def __init__(self, configure: Configurator = load_configuration, timeout: float = 10.0) -> None:
        self._configure = configure
        self._timeout = timeout
        self._api: client.ApiClient | None = None
        self._ops: dict[Resource, _Ops] = {}
        self._patch_status: Callable[[str, str, Any], Awaitable[Any]] | None = None

    async def _bound(self, res: Resource) -> _Ops:
        if self._api is None:
            configuration = await self._configure()
            # A slow API server must not stall a pass forever; kopf retries the pass.
            configuration.retries = 0
            api = client.ApiClient(configuration)
            api.user_agent = _USER_AGENT
            self._api, self._ops, self._patch_status = api, _operations(api), _status_patch(api)
        return self._ops[res]

    async def connect(self) -> None:
        """Load the credentials and bind the API classes now (the first binding takes seconds:
        the generated client builds its request validators), not in the first pass."""
        await self._bound(CLUSTERS)

    async def close(self) -> None:
        if self._api is not None:
            await self._api.close()  # type: ignore[no-untyped-call]
            self._api = None

    async def _call(self, what: str, request: Callable[[], Awaitable[Any]]) -> Any:
        """Run one request; the decoded JSON body, or ApiError for any failure."""
        try:
            async with asyncio.timeout(self._timeout):
                response = await request()
                body = await response.read()
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise ApiError(0, "Unreachable", f"{what}: {type(exc).__name__}: {exc}") from exc
        except pydantic.ValidationError as exc:  # a body the generated model refuses
            raise ApiError(0, "InvalidObject", f"{what}: {exc}") from exc
        try:
            payload = json.loads(body) if body else {}
        except ValueError:
            payload = {}
        if response.status == 401:
            await self.close()  # a rotated service-account token: log in again next time
        if response.status >= 400:
            message = str(payload.get("message") or body[:200].decode(errors="replace"))
            reason = str(payload.get("reason") or response.reason or "Error")
            if response.status == 409 and _conflicts(payload):
                raise ApplyConflict(f"{what}: {message}", _conflicts(payload))
            raise ApiError(response.status, reason, f"{what}: {message}")
        return payload

    async def get(self, res: Resource, namespace: str, name: str) -> dict[str, Any] | None:
        """The object, or None when it does not exist."""
        ops = await self._bound(res)
        try:
            body: dict[str, Any] = await self._call(
                f"get {res.kind}/{name}", lambda: ops.read(namespace, name)
            )
        except ApiError as exc:
            if exc.status == 404:
                return None
            raise
        return body

    async def list(
        self, res: Resource, namespace: str, labels: Mapping[str, str] | None = None
    ) -> list[dict[str, Any]]:
        """Objects in a namespace with all `labels` (filtered here too: mocks ignore selectors)."""
        ops = await self._bound(res)
        selector = ",".join(f"{k}={v}" for k, v in labels.items()) if labels else None
        payload = await self._call(f"list {res.plural}", lambda: ops.list(namespace, selector))
        items: list[dict[str, Any]] = payload.get("items") or []
        if not labels:
            return items
        return [
            i
            for i in items
            if all(
                (i.get("metadata", {}).get("labels") or {}).get(k) == v for k, v in labels.items()
            )
        ]

    async def create(self, obj: Mapping[str, Any]) -> dict[str, Any]:
        """POST: fails with 409 if the name is taken, so it never touches someone else's object."""
        res = resource_of(obj)
        ops = await self._bound(res)
        namespace = obj["metadata"]["namespace"]
        label = f"create {res.kind}/{obj['metadata']['name']}"
        body: dict[str, Any] = await self._call(label, lambda: ops.create(namespace, dict(obj)))
        return body

    async def post_event(self, event: Mapping[str, Any]) -> None:
        """POST an Event."""
        ops = await self._bound(EVENTS)
        namespace = event["metadata"]["namespace"]
        await self._call("create Event", lambda: ops.create(namespace, dict(event)))

    async def apply(self, obj: Mapping[str, Any], force: bool = False) -> dict[str, Any]:
        """Server-side apply of `obj` as FIELD_MANAGER; ApplyConflict when others own fields."""
        res = resource_of(obj)
        ops = await self._bound(res)
        namespace, name = obj["metadata"]["namespace"], obj["metadata"]["name"]
        body: dict[str, Any] = await self._call(
            f"apply {res.kind}/{name}",
            lambda: ops.patch(namespace, name, dict(obj), _APPLY, force),
        )
        return body

    async def patch(
        self, res: Resource, namespace: str, name: str, body: Mapping[str, Any]
    ) -> dict[str, Any]:
        """JSON merge patch (RFC 7386): dicts merge, lists and scalars replace, None deletes."""
        ops = await self._bound(res)
        out: dict[str, Any] = await self._call(
            f"patch {res.kind}/{name}", lambda: ops.patch(namespace, name, dict(body), _MERGE, None)
        )
        return out

    async def json_patch(
        self, res: Resource, namespace: str, name: str, operations: Sequence[Mapping[str, Any]]
    ) -> dict[str, Any]:
        """JSON patch (RFC 6902): a list of operations, `test` ones as preconditions."""
        ops = await self._bound(res)
        out: dict[str, Any] = await self._call(
            f"patch {res.kind}/{name}",
            lambda: ops.patch(namespace, name, [dict(o) for o in operations], _JSON_PATCH, None),
        )
        return out

    async def patch_status(self, namespace: str, name: str, status: Mapping[str, Any]) -> None:
        """Merge-patch the GameSyncCluster's /status subresource."""
        await self._bound(CLUSTERS)
        patch = self._patch_status
        assert patch is not None  # bound together with the operations
        await self._call(
            f"patch {KIND}/{name}/status", lambda: patch(namespace, name, {"status": status})
        )

    async def delete(self, res: Resource, namespace: str, name: str) -> None:
        ops = await self._bound(res)
        try:
            await self._call(f"delete {res.kind}/{name}", lambda: ops.delete(namespace, name))
        except ApiError as exc:
            if exc.status != 404:
                raise
