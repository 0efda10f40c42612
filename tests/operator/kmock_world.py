"""A small world for running the operator in-process against KMock.

Stand-in controllers replace what a real cluster would do: a "ReplicaSet" that makes and
removes Pods for each Deployment (least deletion cost first) and reports ready replicas, and a
"kubelet" that copies the mounted JWKS Secret and runtime ConfigMap into each fake gateway. Fake
gateways answer `/v1/stats` on a loopback port. Time for the operator's decisions comes from a
FakeClock that tests move forward, so hours of rotation schedule take milliseconds.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import datetime as dt
import hashlib
import itertools
import json
import threading
import warnings
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import aiohttp.web
import httpx
import kopf
from api_calls import SUITE, operator_requests, ungranted
from kubernetes.aio import client

from gamesync_operator.config import OperatorConfig
from gamesync_operator.crd import GROUP, KIND, PLURAL, VERSION
from gamesync_operator.handlers import register
from gamesync_operator.metrics import OperatorMetrics
from gamesync_operator.network import OperatorPeer
from gamesync_operator.policy import ImagePolicy

NS = "games"
CR = f"{GROUP}/{VERSION}/{PLURAL}"
DEPLOYMENTS = "apps/v1/deployments"
PODS = "v1/pods"
SECRETS = "v1/secrets"
CONFIGMAPS = "v1/configmaps"
SERVICES = "v1/services"
EVENTS = "v1/events"
NETWORKPOLICIES = "networking.k8s.io/v1/networkpolicies"
DELETION_COST = "controller.kubernetes.io/pod-deletion-cost"
#: The operator's own pods, as the chart describes them to it (--self-namespace/--self-labels).
OPERATOR_PEER = OperatorPeer("gamesync-system", {"app.kubernetes.io/name": "gamesync-operator"})
#: The test world's own requests: a person or another controller, never the operator.
WORLD_AGENT = "kmock-world/1"


class FakeClock:
    """The operator's notion of now; moved by tests, never by the wall clock."""

    def __init__(self) -> None:
        self.now = dt.datetime.now(dt.UTC).replace(microsecond=0)

    def __call__(self) -> dt.datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += dt.timedelta(seconds=seconds)


@dataclass
class Gateway:
    """A fake gateway pod's state as /v1/stats reports it."""

    connections: int = 0
    jwks: dict[str, Any] = field(default_factory=lambda: {"keys": []})
    runtime_hash: str | None = None
    ready: bool = True  # the pod's Ready condition (false in a Redis outage)
    answers: bool = True  # whether /v1/stats answers at all
    draining: bool = False
    shedding: bool = False  # set by a shed request; tests end it
    sheds: list[dict[str, Any]] = field(default_factory=list)  # the shed requests received

    @property
    def kids(self) -> list[str]:
        return sorted(k["kid"] for k in self.jwks["keys"])


def get(kmock: Any, resource: str, name: str, namespace: str = NS) -> dict[str, Any] | None:
    """The stored object (a copy), or None if absent or deleted."""
    try:
        obj = kmock.objects[resource, namespace, name]
    except KeyError:
        return None
    if obj.deleted:
        return None
    return json.loads(json.dumps(obj.raw))


def items(kmock: Any, resource: str) -> list[dict[str, Any]]:
    out = []
    for (res, _, _), obj in list(kmock.objects.items()):
        if str(res.plural) == resource.rsplit("/", 1)[-1] and not obj.deleted:
            out.append(json.loads(json.dumps(obj.raw)))
    return out


def secret_json(secret: dict[str, Any] | None, key: str) -> Any:
    if secret is None or key not in (secret.get("data") or {}):
        return None
    return json.loads(base64.b64decode(secret["data"][key]))


@dataclass
class World:
    kmock: Any
    api: httpx.AsyncClient
    clock: FakeClock
    gateways: dict[str, Gateway]
    kubelet_frozen: bool = False
    load: Callable[[str], int] | None = None  # pod name -> connections, when set
    pods_ready: bool = True  # readiness of pods the stand-in ReplicaSet creates
    metrics: OperatorMetrics | None = None
    made_by: dict[str, str] = field(default_factory=dict)  # pod -> the Deployment that made it
    _names: Any = field(default_factory=lambda: itertools.count(1))

    # -- user actions through the API (so kopf sees watch events) -------------------------------

    async def apply(self, spec: dict[str, Any], name: str = "arena") -> dict[str, Any]:
        body = {
            "apiVersion": f"{GROUP}/{VERSION}",
            "kind": KIND,
            "metadata": {
                "name": name,
                "namespace": NS,
                "uid": f"uid-{name}",
                "generation": 1,
                # KMock stamps no resourceVersion; kopf's JSON patches test it, so give one.
                "resourceVersion": "1",
            },
            "spec": spec,
        }
        response = await self.api.post(
            f"/apis/{GROUP}/{VERSION}/namespaces/{NS}/{PLURAL}", json=body
        )
        response.raise_for_status()
        result: dict[str, Any] = response.json()
        return result

    async def patch_cluster(self, patch: dict[str, Any], name: str = "arena") -> None:
        current = get(self.kmock, CR, name) or {}
        generation = int(current.get("metadata", {}).get("generation") or 1)
        if "spec" in patch:  # the API server bumps generation on spec changes; KMock does not
            patch = {
                **patch,
                "metadata": {**patch.get("metadata", {}), "generation": generation + 1},
            }
        await self.patch(f"/apis/{GROUP}/{VERSION}/namespaces/{NS}/{PLURAL}/{name}", patch)

    async def patch(self, path: str, body: dict[str, Any], manager: str | None = None) -> None:
        """A merge patch, as `manager` (e.g. kubectl-edit; default: the world's User-Agent)."""
        response = await self.api.patch(
            path,
            json=body,
            params={"fieldManager": manager} if manager else None,
            headers={"Content-Type": "application/merge-patch+json"},
        )
        response.raise_for_status()

    async def create(self, path: str, body: dict[str, Any]) -> None:
        response = await self.api.post(path, json=body)
        response.raise_for_status()

    def outage(self, answers: bool = True) -> None:
        """Redis is down: every gateway pod turns unready; `answers` False: no stats either."""
        self.pods_ready = False
        for gateway in self.gateways.values():
            gateway.ready = False
            gateway.answers = answers

    async def delete(self, path: str) -> None:
        response = await self.api.delete(path)
        response.raise_for_status()

    def cluster(self, name: str = "arena") -> dict[str, Any]:
        return get(self.kmock, CR, name) or {}

    def condition(self, type_: str, name: str = "arena") -> dict[str, Any]:
        for cond in self.cluster(name).get("status", {}).get("conditions") or []:
            if cond["type"] == type_:
                return dict(cond)
        return {}

    def pods(self, deployment: str = "arena") -> list[dict[str, Any]]:
        return [
            p
            for p in items(self.kmock, PODS)
            if p["metadata"]["labels"].get("app.kubernetes.io/instance") == deployment
        ]

    def events(self) -> list[dict[str, Any]]:
        """Events kopf posted (from the request log: KMock stores no generateName objects)."""
        return [
            r.data
            for r in list(self.kmock)
            if r.resource is not None
            and r.resource.plural == "events"
            and str(r.method).upper().endswith("POST")
            and isinstance(r.data, dict)
        ]

    # -- stand-in controllers -------------------------------------------------------------------

    def step(self) -> None:
        deployments = items(self.kmock, DEPLOYMENTS)
        for dep in deployments:
            self._replicaset(dep)
        self._garbage_collector({d["metadata"]["name"] for d in deployments})
        self._kubelet()

    def _garbage_collector(self, deployments: set[str]) -> None:
        """A deleted Deployment's pods go (ownerReferences, cascading deletion)."""
        for pod, owner in list(self.made_by.items()):
            if owner not in deployments:
                del self.made_by[pod]
                if get(self.kmock, PODS, pod) is not None:
                    self.kmock.objects[PODS, NS, pod].delete()
                self.gateways.pop(pod, None)

    def _selected(self, dep: dict[str, Any]) -> list[dict[str, Any]]:
        """The pods a Deployment made that its selector still matches. A ReplicaSet never
        adopts another one's pods (their controllerRef), however the selectors overlap: the
        one-shard Deployment's selector matches a shard Deployment's pods too."""
        name = dep["metadata"]["name"]
        selector = (dep["spec"].get("selector") or {}).get("matchLabels")
        wanted = (selector or {"app.kubernetes.io/instance": name}).items()
        return [
            p
            for p in items(self.kmock, PODS)
            if wanted <= p["metadata"]["labels"].items()
            and self.made_by.get(p["metadata"]["name"], name) == name
        ]

    def _replicaset(self, dep: dict[str, Any]) -> None:
        name = dep["metadata"]["name"]
        want = int(dep["spec"].get("replicas", 1))
        pods = self._selected(dep)
        while len(pods) < want:
            pod_name = f"{name}-{next(self._names)}"
            labels = dep["spec"]["template"]["metadata"]["labels"]
            self.kmock.objects[PODS, NS, pod_name] = {
                "apiVersion": "v1",
                "kind": "Pod",
                "metadata": {"name": pod_name, "namespace": NS, "labels": dict(labels)},
                "status": {
                    "phase": "Running",
                    "podIP": "127.0.0.1",
                    "conditions": [{"type": "Ready", "status": "True"}],
                },
            }
            self.gateways[pod_name] = Gateway(ready=self.pods_ready)
            self.made_by[pod_name] = name
            pods = self._selected(dep)
        while len(pods) > want:
            # The ReplicaSet removes the pod with the lowest pod-deletion-cost first (KEP-2255).
            def cost(p: dict[str, Any]) -> tuple[int, str]:
                raw = (p["metadata"].get("annotations") or {}).get(DELETION_COST, "0")
                return int(raw), p["metadata"]["name"]

            victim = min(pods, key=cost)["metadata"]["name"]
            self.kmock.objects[PODS, NS, victim].delete()
            self.gateways.pop(victim, None)
            pods = self._selected(dep)
        ready = 0
        for pod in pods:
            gateway = self.gateways.get(pod["metadata"]["name"])
            is_ready = gateway is not None and gateway.ready
            ready += is_ready
            condition = {"type": "Ready", "status": "True" if is_ready else "False"}
            if pod["status"]["conditions"] != [condition]:
                self.kmock.objects[PODS, NS, pod["metadata"]["name"]].patch(
                    {"status": {"conditions": [condition]}}
                )
        status = {
            "replicas": want,
            "readyReplicas": ready,
            "updatedReplicas": want,
            "availableReplicas": ready,
        }
        if dep.get("status") != status:
            self.kmock.objects[DEPLOYMENTS, NS, name].patch({"status": status})

    def _kubelet(self) -> None:
        for pod_name, gateway in self.gateways.items():
            if self.load is not None:
                gateway.connections = self.load(pod_name)
            if self.kubelet_frozen:
                continue
            pod = get(self.kmock, PODS, pod_name)
            if pod is None:
                continue
            instance = pod["metadata"]["labels"]["app.kubernetes.io/instance"]
            jwks = secret_json(get(self.kmock, SECRETS, f"{instance}-jwks"), "jwks.json")
            if jwks is not None:
                gateway.jwks = jwks
            cm = get(self.kmock, CONFIGMAPS, f"{instance}-runtime")
            if cm is not None:
                data = cm["data"]["runtime.json"].encode()
                gateway.runtime_hash = "sha256:" + hashlib.sha256(data).hexdigest()

    async def eventually(
        self, predicate: Callable[[], Any], what: str, timeout: float = 15.0
    ) -> Any:
        """Poll `predicate` (stand-ins step in between) until truthy; fail after `timeout`."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            self.step()
            result = predicate()
            if result:
                return result
            if loop.time() > deadline:
                raise AssertionError(f"timed out waiting for: {what}")
            await asyncio.sleep(0.02)  # yield to the operator and the servers, then re-check


async def _stats_server(gateways: dict[str, Gateway]) -> tuple[aiohttp.web.AppRunner, int]:
    async def stats(request: aiohttp.web.Request) -> aiohttp.web.Response:
        gateway = gateways.get(request.match_info["pod"])
        if gateway is None:
            return aiohttp.web.json_response({"error": "no such pod"}, status=404)
        if not gateway.answers:
            return aiohttp.web.json_response({"error": "unavailable"}, status=503)
        return aiohttp.web.json_response(
            {
                "pod": request.match_info["pod"],
                "version": "0.1.0",
                "ready": gateway.ready,
                "draining": gateway.draining,
                "shed": {"inProgress": gateway.shedding, "requested": 0, "done": 0, "total": 0},
                "connections": gateway.connections,
                "subscriptions": 0,
                "games": 0,
                "deliveries": 0,
                "kids": gateway.kids,
                "runtimeConfig": {"hash": gateway.runtime_hash, "valid": True, "error": None},
            }
        )

    async def shed(request: aiohttp.web.Request) -> aiohttp.web.Response:
        gateway = gateways.get(request.match_info["pod"])
        if gateway is None or not gateway.answers:
            return aiohttp.web.json_response({"error": "unavailable"}, status=503)
        if gateway.draining:
            return aiohttp.web.json_response({"error": "draining"}, status=409)
        gateway.sheds.append(await request.json())
        gateway.shedding = True
        return aiohttp.web.json_response({"accepted": True}, status=202)

    app = aiohttp.web.Application()
    app.router.add_get("/pods/{pod}/v1/stats", stats)
    app.router.add_post("/pods/{pod}/v1/shed", shed)
    runner = aiohttp.web.AppRunner(app)
    await runner.setup()
    site = aiohttp.web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    return runner, port


def declare_resources(kmock: Any, gateway_api: bool, monitoring: bool = True) -> None:
    unserved = set()
    if not gateway_api:
        unserved.add("gateway.networking.k8s.io")
    if not monitoring:
        unserved.add("monitoring.coreos.com")
    kmock.unserved_groups = frozenset(unserved)
    with warnings.catch_warnings():  # kmock 0.8 uses a deprecated importlib.resources call
        warnings.simplefilter("ignore", DeprecationWarning)
        kmock.resources.load_bundled()
    info = kmock.ResourceInfo
    kmock.resources[CR] = info(
        kind=KIND,
        singular="gamesynccluster",
        shortnames={"gsc"},
        namespaced=True,
        verbs={"list", "watch", "get", "patch", "create", "delete"},
        subresources={"status"},
    )
    # Not served at all: absent from discovery (kopf does not watch them), and every request
    # gets the API server's 404 (ApplyEmulator answers for the unserved groups).
    if gateway_api:
        kmock.resources["gateway.networking.k8s.io/v1/httproutes"] = info(
            kind="HTTPRoute",
            singular="httproute",
            namespaced=True,
            verbs={"list", "watch", "get", "patch", "create", "delete"},
        )
    else:
        for version in ("v1", "v1beta1"):
            with contextlib.suppress(KeyError):
                del kmock.resources[f"gateway.networking.k8s.io/{version}/httproutes"]
    if monitoring:  # the Prometheus Operator's CRDs are installed
        kmock.resources["monitoring.coreos.com/v1/podmonitors"] = info(
            kind="PodMonitor",
            singular="podmonitor",
            namespaced=True,
            verbs={"list", "watch", "get", "patch", "create", "delete"},
        )
    kmock.resources["keda.sh/v1alpha1/scaledobjects"] = info(
        kind="ScaledObject",
        singular="scaledobject",
        namespaced=True,
        verbs={"list", "watch", "get", "patch", "create", "delete"},
    )
    kmock.resources["apiextensions.k8s.io/v1/customresourcedefinitions"] = info(
        kind="CustomResourceDefinition",
        singular="customresourcedefinition",
        namespaced=False,
        verbs={"list", "watch", "get"},
    )


@asynccontextmanager
async def running_operator(
    kmock: Any,
    gateway_api: bool = True,
    clusterwide: bool = True,
    images: tuple[str, ...] = (),
    interval: float = 0.1,
    monitoring: bool = True,
) -> AsyncIterator[World]:
    """Start the stats server and the operator (in its own thread); yield the world.

    `gateway_api` False serves no HTTPRoute API, as on a cluster without Gateway API CRDs;
    `monitoring` False no PodMonitor API, as on a cluster without the Prometheus Operator.
    `clusterwide` False watches only the test namespace, as the chart's namespaced mode does.
    `images` is the operator's image allow-list; `interval` its resync backstop (a long one
    shows what the watches alone repair). On the way out, every API call the operator made is
    checked against the chart's RBAC and added to the suite's record.
    """
    declare_resources(kmock, gateway_api, monitoring)
    gateways: dict[str, Gateway] = {}
    runner, port = await _stats_server(gateways)
    clock = FakeClock()

    server = str(kmock.url)

    async def configure() -> client.Configuration:
        # KMock speaks plain HTTP: the official client simply points at it.
        return client.Configuration(host=server.rstrip("/"))

    config = OperatorConfig(
        interval=interval,
        retry_delay=0.2,
        child_debounce=0.05,
        stats_timeout=1.0,
        api_timeout=5.0,
        images=ImagePolicy(images),
        peer=OPERATOR_PEER,
        resolve_stats=lambda pod: f"http://127.0.0.1:{port}/pods/{pod['metadata']['name']}",
        clock=clock,
        configure=configure,
    )
    registry = kopf.OperatorRegistry()
    register(registry, config)

    @kopf.on.login(registry=registry)
    async def login(**_: Any) -> kopf.ConnectionInfo:
        return kopf.ConnectionInfo(server=server, insecure=True)

    settings = kopf.OperatorSettings()
    settings.peering.standalone = True
    settings.watching.reconnect_backoff = 0.05
    settings.persistence.consistency_timeout = 0.2
    settings.queueing.exit_timeout = 0.5
    # kopf runs in its own thread and event loop, as in production: on exit it cancels every
    # task of its loop, which must not include the mock server's or the test's.
    stop = threading.Event()
    ready = threading.Event()
    kopf_loop: dict[str, Any] = {}

    async def operator() -> None:
        kopf_loop["loop"] = asyncio.get_running_loop()
        kopf_loop["task"] = asyncio.current_task()
        await kopf.operator(
            registry=registry,
            settings=settings,
            clusterwide=clusterwide,
            namespaces=() if clusterwide else (NS,),
            stop_flag=stop,
            ready_flag=ready,
        )

    def run() -> None:
        with contextlib.suppress(asyncio.CancelledError):
            asyncio.run(operator())

    # kopf runs in its own thread and event loop, as in production: on exit it cancels every
    # task of its loop, which must not include the mock server's or the test's.
    thread = threading.Thread(target=run, name="kopf", daemon=True)
    thread.start()
    api = httpx.AsyncClient(
        base_url=str(kmock.url).rstrip("/"), timeout=5.0, headers={"User-Agent": WORLD_AGENT}
    )
    world = World(kmock=kmock, api=api, clock=clock, gateways=gateways, metrics=config.metrics)
    try:
        assert await asyncio.to_thread(ready.wait, 10), "kopf did not start"
        yield world
    finally:
        stop.set()
        # A graceful stop; if kopf then waits on tasks spawned by late events (KMock replays
        # them), cancel it: tests need no grace, only a stopped operator.
        await asyncio.to_thread(thread.join, 1.0)
        if thread.is_alive():
            kopf_loop["loop"].call_soon_threadsafe(kopf_loop["task"].cancel)
        try:
            # KMock's watch handlers notice a gone client only when they next write: give each
            # watched resource one event so that they end and the server can stop at once.
            while thread.is_alive():
                await asyncio.to_thread(thread.join, 0.2)
            await api.post(f"/apis/{GROUP}/{VERSION}/namespaces/{NS}/{PLURAL}", json=_nudge())
            await api.post(
                "/apis/apiextensions.k8s.io/v1/customresourcedefinitions", json=_nudge_crd()
            )
        finally:
            await api.aclose()
            await runner.cleanup()
    recorded = operator_requests(kmock)
    SUITE.calls.update(r.call for r in recorded)
    refused = ungranted(recorded, clusterwide)
    assert not refused, f"the chart's RBAC does not grant: {refused}"


_nudges = itertools.count()


def _nudge() -> dict[str, Any]:
    name = f"zz-nudge-{next(_nudges)}"
    return {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": KIND,
        "metadata": {"name": name, "namespace": NS},
    }


def _nudge_crd() -> dict[str, Any]:
    name = f"zz-nudge-{next(_nudges)}"
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": name},
    }
