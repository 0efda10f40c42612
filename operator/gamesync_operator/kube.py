"""A small async Kubernetes API client: get, list, create, merge-patch, delete.

The operator's own writes go through this (kopf only watches and patches the custom resource).
It is built from a `kopf.ConnectionInfo`, the same credentials kopf logs in with, so a test
points both at one mock server.
"""

from __future__ import annotations

import asyncio
import base64
import logging
import ssl
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

import httpx
import kopf

from gamesync_operator.crd import GROUP, PLURAL, VERSION
from gamesync_operator.errors import ApiError

__all__ = [
    "CLUSTERS",
    "CONFIGMAPS",
    "DEPLOYMENTS",
    "HPAS",
    "HTTPROUTES",
    "INGRESSES",
    "PDBS",
    "PODS",
    "SCALEDOBJECTS",
    "SECRETS",
    "SERVICES",
    "Kube",
    "Resource",
    "resource_of",
]

ConnectionFactory = Callable[[], Awaitable[Any]]


@dataclass(frozen=True)
class Resource:
    """A namespaced API resource, addressable by URL."""

    group: str
    version: str
    plural: str

    @property
    def api_version(self) -> str:
        return f"{self.group}/{self.version}" if self.group else self.version

    def path(self, namespace: str, name: str | None = None, subresource: str | None = None) -> str:
        root = f"/apis/{self.group}/{self.version}" if self.group else f"/api/{self.version}"
        path = f"{root}/namespaces/{quote(namespace)}/{self.plural}"
        if name is not None:
            path += f"/{quote(name)}"
        if subresource is not None:
            path += f"/{subresource}"
        return path


CLUSTERS = Resource(GROUP, VERSION, PLURAL)
DEPLOYMENTS = Resource("apps", "v1", "deployments")
SERVICES = Resource("", "v1", "services")
CONFIGMAPS = Resource("", "v1", "configmaps")
SECRETS = Resource("", "v1", "secrets")
PODS = Resource("", "v1", "pods")
PDBS = Resource("policy", "v1", "poddisruptionbudgets")
INGRESSES = Resource("networking.k8s.io", "v1", "ingresses")
HTTPROUTES = Resource("gateway.networking.k8s.io", "v1", "httproutes")
HPAS = Resource("autoscaling", "v2", "horizontalpodautoscalers")
SCALEDOBJECTS = Resource("keda.sh", "v1alpha1", "scaledobjects")

_BY_KIND = {
    (r.api_version, kind): r
    for r, kind in [
        (DEPLOYMENTS, "Deployment"),
        (SERVICES, "Service"),
        (CONFIGMAPS, "ConfigMap"),
        (SECRETS, "Secret"),
        (PODS, "Pod"),
        (PDBS, "PodDisruptionBudget"),
        (INGRESSES, "Ingress"),
        (HTTPROUTES, "HTTPRoute"),
        (HPAS, "HorizontalPodAutoscaler"),
        (SCALEDOBJECTS, "ScaledObject"),
    ]
}


def resource_of(obj: Mapping[str, Any]) -> Resource:
    """The Resource an object's apiVersion and kind belong to."""
    return _BY_KIND[(obj["apiVersion"], obj["kind"])]


def _client_for(info: Any, timeout: float) -> httpx.AsyncClient:
    verify: ssl.SSLContext | bool = True
    if info.insecure:
        verify = False
    else:
        ctx = ssl.create_default_context(cafile=str(info.ca_path) if info.ca_path else None)
        if info.ca_data:
            data = info.ca_data if isinstance(info.ca_data, str) else info.ca_data.decode()
            if "BEGIN CERTIFICATE" not in data:
                data = base64.b64decode(data).decode()
            ctx.load_verify_locations(cadata=data)
        if info.certificate_path and info.private_key_path:
            ctx.load_cert_chain(str(info.certificate_path), str(info.private_key_path))
        verify = ctx
    headers = {"Accept": "application/json"}
    auth: httpx.BasicAuth | None = None
    if info.token:
        headers["Authorization"] = f"{info.scheme or 'Bearer'} {info.token}"
    elif info.username and info.password:
        auth = httpx.BasicAuth(info.username, info.password)
    return httpx.AsyncClient(
        base_url=str(info.server).rstrip("/"),
        verify=verify,
        headers=headers,
        auth=auth,
        timeout=timeout,
        trust_env=bool(info.trust_env),
    )


async def login() -> Any:
    """Credentials as kopf finds them: in-cluster service account, else kubeconfig."""
    logger = logging.getLogger("gamesync_operator.login")
    settings = kopf.OperatorSettings()
    return await asyncio.to_thread(kopf.login_via_client, logger=logger, settings=settings)


class Kube:
    """Thin async API access; every failure is an ApiError with the server's reason."""

    def __init__(self, connect: ConnectionFactory = login, timeout: float = 10.0) -> None:
        self._connect = connect
        self._timeout = timeout
        self._client: httpx.AsyncClient | None = None

    async def _http(self) -> httpx.AsyncClient:
        if self._client is None:
            info = await self._connect()
            if info is None:
                raise ApiError(0, "NoCredentials", "no in-cluster or kubeconfig credentials")
            self._client = _client_for(info, self._timeout)
        return self._client

    async def close(self) -> None:
        if self._client is not None:
            await self._client.aclose()
            self._client = None

    async def _request(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        client = await self._http()
        try:
            response = await client.request(method, path, **kwargs)
        except httpx.HTTPError as exc:
            raise ApiError(0, "Unreachable", f"{method} {path}: {exc}") from exc
        if response.status_code == 401:
            await self.close()  # a rotated service-account token: log in again next time
        if response.status_code >= 400:
            try:
                payload = response.json()
            except ValueError:
                payload = {}
            raise ApiError(
                response.status_code,
                str(payload.get("reason") or response.reason_phrase),
                str(payload.get("message") or response.text[:200]),
            )
        return response

    async def get(self, res: Resource, namespace: str, name: str) -> dict[str, Any] | None:
        """The object, or None when it does not exist."""
        try:
            response = await self._request("GET", res.path(namespace, name))
        except ApiError as exc:
            if exc.status == 404:
                return None
            raise
        body: dict[str, Any] = response.json()
        return body

    async def list(
        self, res: Resource, namespace: str, labels: Mapping[str, str] | None = None
    ) -> list[dict[str, Any]]:
        """Objects in a namespace with all `labels` (filtered here too: mocks ignore selectors)."""
        params = (
            {"labelSelector": ",".join(f"{k}={v}" for k, v in labels.items())} if labels else {}
        )
        response = await self._request("GET", res.path(namespace), params=params)
        items: list[dict[str, Any]] = response.json().get("items") or []
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
        res = resource_of(obj)
        namespace = obj["metadata"]["namespace"]
        response = await self._request("POST", res.path(namespace), json=dict(obj))
        body: dict[str, Any] = response.json()
        return body

    async def patch(
        self,
        res: Resource,
        namespace: str,
        name: str,
        body: Mapping[str, Any],
        subresource: str | None = None,
    ) -> dict[str, Any]:
        """JSON merge patch (RFC 7386): dicts merge, lists and scalars replace, None deletes."""
        response = await self._request(
            "PATCH",
            res.path(namespace, name, subresource),
            json=dict(body),
            headers={"Content-Type": "application/merge-patch+json"},
        )
        out: dict[str, Any] = response.json()
        return out

    async def delete(self, res: Resource, namespace: str, name: str) -> None:
        try:
            await self._request("DELETE", res.path(namespace, name))
        except ApiError as exc:
            if exc.status != 404:
                raise
