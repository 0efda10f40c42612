"""The whole operator in-process against KMock, with stand-in controllers and fake gateways."""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import json
from typing import Any

from gsc_builders import raw_spec
from kmock_world import (
    CONFIGMAPS,
    CR,
    DEPLOYMENTS,
    NS,
    SECRETS,
    SERVICES,
    World,
    get,
    running_operator,
    secret_json,
)

from gamesync.errors import AuthError
from gamesync.keys import KeySet, sign_token
from gamesync_operator import crd

DEPLOYMENT_PATH = f"/apis/apps/v1/namespaces/{NS}/deployments/arena"
SERVICE_PATH = f"/api/v1/namespaces/{NS}/services/arena"
CHILDREN = [
    (DEPLOYMENTS, "arena"),
    (SERVICES, "arena"),
    (SERVICES, "arena-internal"),
    ("networking.k8s.io/v1/networkpolicies", "arena"),
    (CONFIGMAPS, "arena-runtime"),
    ("policy/v1/poddisruptionbudgets", "arena"),
    ("gateway.networking.k8s.io/v1/httproutes", "arena"),
    (SECRETS, "arena-jwks"),
    (SECRETS, "arena-signer"),
]


def _undeclared(schema: dict[str, Any], value: Any, path: str = "status") -> list[str]:
    """Fields a real API server would prune because the CRD's schema does not declare them."""
    if isinstance(value, dict) and schema.get("type") == "object":
        props = schema.get("properties", {})
        out = [f"{path}.{k}" for k in value if k not in props]
        for key, child in value.items():
            if key in props:
                out += _undeclared(props[key], child, f"{path}.{key}")
        return out
    if isinstance(value, list) and "items" in schema:
        return [p for item in value for p in _undeclared(schema["items"], item, f"{path}[]")]
    return []


def _ready(world: World) -> bool:
    return world.condition("Ready").get("status") == "True"


async def test_create_makes_owned_children_and_a_truthful_status(kmock: Any) -> None:
    async with running_operator(kmock) as world:
        world.load = lambda pod: 7
        await world.apply(raw_spec())
        await world.eventually(lambda: _ready(world), "Ready=True")
        for resource, name in CHILDREN:
            child = get(kmock, resource, name)
            assert child is not None, (resource, name)
            (ref,) = child["metadata"]["ownerReferences"]
            assert ref["uid"] == "uid-arena"
            assert ref["controller"] is True

        await world.eventually(
            lambda: world.cluster()["status"].get("connections") == 14, "connections"
        )
        status = world.cluster()["status"]
        assert status["observedGeneration"] == 1
        assert status["readyReplicas"] == 2
        assert status["replicas"] == 2
        assert status["desiredReplicas"] == 2
        assert (
            status["labelSelector"]
            == "app.kubernetes.io/instance=arena,app.kubernetes.io/name=gamesync-gateway"
        )
        # One shard: the scale subresource's pair is the fleet's.
        assert (status["shardReplicas"], status["shardSelector"]) == (2, status["labelSelector"])
        signer = secret_json(get(kmock, SECRETS, "arena-signer"), "signer.json")
        assert status["signingKeys"]["activeKid"] == signer["active"]
        assert status["signingKeys"]["nextKid"] == signer["next"]
        jwks = secret_json(get(kmock, SECRETS, "arena-jwks"), "jwks.json")
        assert {k["kid"] for k in jwks["keys"]} == {signer["active"], signer["next"]}
        assert all("d" not in k for k in jwks["keys"])  # gateways never get private keys
        types = {c["type"]: c for c in status["conditions"]}
        assert set(types) == {
            "Ready",
            "Accepted",
            "Progressing",
            "Degraded",
            "KeysReady",
            "ScalingActive",
            "Monitoring",
            "Paused",
        }
        assert (types["Ready"]["reason"], types["Accepted"]["reason"]) == ("Serving", "Valid")
        assert (types["Monitoring"]["status"], types["Monitoring"]["reason"]) == (
            "False",
            "Disabled",
        )
        assert all(c["observedGeneration"] == 1 for c in types.values())
        assert types["KeysReady"]["status"] == "True"
        assert types["Degraded"]["status"] == "False"
        schema = crd.crd()["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"][
            "status"
        ]
        assert _undeclared(schema, status) == []
        # The operator's metrics say the same as the status (the alert rules rely on them).
        assert world.metrics is not None
        labels = {"namespace": NS, "name": "arena"}
        sample = world.metrics.registry.get_sample_value
        await world.eventually(
            lambda: sample("gamesync_operator_connections", labels) == 14, "connections gauge"
        )
        await world.eventually(
            lambda: sample("gamesync_operator_ready_replicas", labels) == 2, "ready gauge"
        )
        due = dt.datetime.fromisoformat(
            status["signingKeys"]["nextRotationTime"].replace("Z", "+00:00")
        )
        assert sample("gamesync_operator_key_rotation_due_timestamp_seconds", labels) == (
            due.timestamp()
        )
        # No finalizer (deleting never waits for the operator); no kopf.zalando.org bookkeeping.
        meta = world.cluster()["metadata"]
        assert not meta.get("finalizers")
        assert not any("kopf.zalando.org" in a for a in meta.get("annotations", {}))


async def test_deleted_children_come_back_and_hand_edits_are_reported_not_overwritten(
    kmock: Any,
) -> None:
    async with running_operator(kmock) as world:
        await world.apply(raw_spec())
        await world.eventually(lambda: _ready(world), "Ready=True")
        image = get(kmock, DEPLOYMENTS, "arena")["spec"]["template"]["spec"]["containers"][0][
            "image"
        ]

        await world.delete(SERVICE_PATH)
        await world.eventually(lambda: get(kmock, SERVICES, "arena"), "the Service recreated")

        # A person edits a field the operator sets: they own it now (server-side apply).
        edited = {
            "spec": {
                "template": {"spec": {"containers": [{"name": "gateway", "image": "evil:latest"}]}}
            }
        }
        await world.patch(DEPLOYMENT_PATH, edited, manager="kubectl-edit")
        # Any later change makes the operator apply the Deployment again: it must not clobber.
        await world.patch_cluster({"spec": {"gateway": {"logLevel": "debug"}}})
        await world.eventually(
            lambda: world.condition("Degraded").get("reason") == "FieldConflict",
            "the conflict reported",
        )
        message = world.condition("Degraded")["message"]
        assert "Deployment/arena" in message
        assert '.spec.template.spec.containers[name="gateway"].image' in message
        assert "kubectl-edit" in message
        # The pods still serve: Ready stays True, Degraded says the spec is not what runs.
        assert world.condition("Ready")["status"] == "True"
        container = get(kmock, DEPLOYMENTS, "arena")["spec"]["template"]["spec"]["containers"][0]
        assert container["image"] == "evil:latest"  # reported, not overwritten
        await world.eventually(
            lambda: "FieldConflict" in {e.get("reason") for e in world.events()}, "an Event"
        )
        # The person puts the value back: agreement, no conflict, nothing Degraded any more.
        restored = {
            "spec": {"template": {"spec": {"containers": [{"name": "gateway", "image": image}]}}}
        }
        await world.patch(DEPLOYMENT_PATH, restored, manager="kubectl-edit")
        await world.eventually(
            lambda: (
                world.condition("Degraded").get("status") == "False"
                and "readinessProbe"
                in get(kmock, DEPLOYMENTS, "arena")["spec"]["template"]["spec"]["containers"][0]
            ),
            "no conflict and the operator's fields back after the edit is undone",
        )
        assert _ready(world)
        container = get(kmock, DEPLOYMENTS, "arena")["spec"]["template"]["spec"]["containers"][0]
        assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"


async def test_scales_up_promptly_and_down_one_pod_at_a_time_after_the_window(kmock: Any) -> None:
    spec = raw_spec(
        autoscaling={
            "minReplicas": 2,
            "maxReplicas": 6,
            "targetConnectionsPerPod": 100,
            "scaleDownStabilizationSeconds": 600,
            "scaleDownPeriodSeconds": 120,
        }
    )
    async with running_operator(kmock) as world:
        world.load = lambda pod: 250
        await world.apply(spec)

        def replicas() -> int:
            dep = get(kmock, DEPLOYMENTS, "arena")
            return int(dep["spec"]["replicas"]) if dep else 0

        # 2 pods x 250 = 500 connections -> 5 pods; then 5 x 250 = 1250 -> clamped to 6.
        await world.eventually(lambda: replicas() == 6, "scale up to the max")
        assert world.cluster()["status"]["autoscaling"]["reason"] in ("ScaledUp", "Steady")

        # Load drops: 6 pods x 10 = 60 connections -> the minimum would do, but not yet.
        loads = {}

        def light(pod: str) -> int:
            return loads.setdefault(pod, 10 + len(loads))  # distinct, so the cheapest is known

        world.load = light
        await world.eventually(
            lambda: world.cluster()["status"]["autoscaling"].get("reason") == "Stabilizing",
            "stabilising",
        )
        assert replicas() == 6
        world.clock.advance(599)
        await world.eventually(
            lambda: world.cluster()["status"]["autoscaling"].get("reason") == "Stabilizing",
            "still stabilising",
        )
        assert replicas() == 6

        cheapest = min(
            (p["metadata"]["name"] for p in world.pods()), key=lambda n: loads.get(n, 10**6)
        )
        await world.eventually(
            lambda: all(
                "controller.kubernetes.io/pod-deletion-cost"
                in (p["metadata"].get("annotations") or {})
                for p in world.pods()
            ),
            "pod-deletion-cost on every pod",
        )
        world.clock.advance(2)
        await world.eventually(lambda: replicas() == 5, "one pod removed after the window")
        await world.eventually(lambda: len(world.pods()) == 5, "the ReplicaSet removed a pod")
        assert cheapest not in {p["metadata"]["name"] for p in world.pods()}  # least loaded went
        # One per period: nothing more until 120 s have passed.
        world.clock.advance(60)
        await world.eventually(
            lambda: (
                world.cluster()["status"]["autoscaling"]
                .get("message", "")
                .startswith("one pod per")
            ),
            "waiting for the period",
        )
        assert replicas() == 5
        world.clock.advance(61)
        await world.eventually(lambda: replicas() == 4, "the next pod after one period")
        await world.eventually(
            lambda: {"ScaledUp", "ScaledDown"} <= {e.get("reason") for e in world.events()},
            "scaling events",
        )


async def test_hpa_mode_renders_an_hpa_and_leaves_replicas_alone(kmock: Any) -> None:
    async with running_operator(kmock) as world:
        await world.apply(raw_spec(autoscaling={"mode": "HPA", "minReplicas": 3, "maxReplicas": 9}))
        await world.eventually(
            lambda: get(kmock, "autoscaling/v2/horizontalpodautoscalers", "arena"), "the HPA"
        )
        # An HPA scales the Deployment; the operator must not fight it.
        kmock.objects[DEPLOYMENTS, NS, "arena"].patch({"spec": {"replicas": 7}})
        await world.eventually(lambda: len(world.pods()) == 7, "seven pods")
        await world.eventually(
            lambda: world.cluster()["status"].get("readyReplicas") == 7, "status sees 7 ready"
        )
        assert get(kmock, DEPLOYMENTS, "arena")["spec"]["replicas"] == 7
        assert world.cluster()["status"]["autoscaling"] == {"owner": "HPA"}


async def test_a_full_rotation_never_refuses_a_live_token(kmock: Any) -> None:
    keys = {
        "rotationInterval": "2h",
        "maxTokenLifetime": "30m",
        "clockSkew": "60s",
        "publishLead": "5m",
    }
    async with running_operator(kmock) as world:
        await world.apply(raw_spec(signingKeys=keys))
        await world.eventually(lambda: _ready(world), "Ready=True")
        first = secret_json(get(kmock, SECRETS, "arena-signer"), "signer.json")

        refused: list[str] = []
        issued: list[tuple[str, str, float]] = []  # (kid, token, expiry on the fake clock)

        def backend_signs_and_gateways_verify() -> None:
            # A backend with no propagation delay signs with whatever the signer Secret says;
            # every ready gateway must accept every token that is live on the fake clock.
            signer = secret_json(get(kmock, SECRETS, "arena-signer"), "signer.json")
            now = world.clock().timestamp()
            issued.append(
                (signer["active"], sign_token(signer, "7", ttl=1800, now=now), now + 1800)
            )
            for gateway_name, gateway in list(world.gateways.items()):
                keyset = KeySet.from_jwks(gateway.jwks)
                for kid, token, expires in issued:
                    if expires <= now:
                        continue
                    try:
                        # Liveness is judged on the fake clock above; pyjwt would use the wall
                        # clock, so its time checks are switched off with a wide leeway.
                        keyset.verify(token, leeway=365 * 86400)
                    except AuthError as exc:
                        refused.append(f"{gateway_name} refused {kid}: {exc}")

        async def checker() -> None:
            while True:
                backend_signs_and_gateways_verify()
                await asyncio.sleep(0.01)  # a sampling period, not synchronisation

        task = asyncio.create_task(checker())
        try:
            # Gateways stop reloading for a while: activation must still only use a key they have.
            world.kubelet_frozen = True
            world.clock.advance(2 * 3600)
            await world.eventually(
                lambda: (
                    secret_json(get(kmock, SECRETS, "arena-signer"), "signer.json")["active"]
                    == first["next"]
                ),
                "the next key activated on schedule",
            )
            second = secret_json(get(kmock, SECRETS, "arena-signer"), "signer.json")
            await world.eventually(
                lambda: world.cluster()["status"]["signingKeys"].get("phase") == "Publishing",
                "a fresh next key is being published",
            )
            jwks_kids = {
                k["kid"]
                for k in secret_json(get(kmock, SECRETS, "arena-jwks"), "jwks.json")["keys"]
            }
            assert jwks_kids == {first["active"], first["next"], second["next"]}
            world.kubelet_frozen = False
            await world.eventually(
                lambda: world.cluster()["status"]["signingKeys"].get("phase") == "Retiring",
                "every gateway has the new next key; the old one is retiring",
            )
            # The old key leaves the JWKS once every token it signed has expired.
            world.clock.advance(5 * 60 + 30 * 60 + 60 + 1)
            await world.eventually(
                lambda: (
                    first["active"]
                    not in {
                        k["kid"]
                        for k in secret_json(get(kmock, SECRETS, "arena-jwks"), "jwks.json")["keys"]
                    }
                ),
                "the old key retired",
            )
            await world.eventually(
                lambda: all(first["active"] not in g.kids for g in world.gateways.values()),
                "gateways dropped the old key",
            )
            backend_signs_and_gateways_verify()
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        assert refused == []
        assert len({kid for kid, _, _ in issued}) == 2  # tokens of both keys were checked
        assert world.cluster()["status"]["signingKeys"]["keyGeneration"] == 2
        await world.eventually(
            lambda: (
                {"KeysCreated", "KeyActivated", "KeyRetired"}
                <= {e.get("reason") for e in world.events()}
            ),
            "events for each step",
        )


async def test_pause_freezes_everything_and_says_so(kmock: Any) -> None:
    async with running_operator(kmock) as world:
        await world.apply(raw_spec())
        await world.eventually(lambda: _ready(world), "Ready=True")
        await world.patch_cluster({"spec": {"paused": True}})
        await world.eventually(
            lambda: world.condition("Paused").get("status") == "True", "Paused=True"
        )
        assert world.condition("Paused")["observedGeneration"] == 2
        await world.eventually(
            lambda: world.condition("Ready").get("reason") == "Paused", "Ready says paused"
        )
        assert world.condition("Ready")["status"] == "True"  # the gateways still serve

        await world.delete(SERVICE_PATH)
        await world.patch_cluster({"spec": {"paused": True, "gateway": {"image": "gamesync:2"}}})
        writes_before = len(kmock.objects[DEPLOYMENTS, NS, "arena"].history)
        # Several resync passes run while paused (observed through status generation) ...
        await world.eventually(
            lambda: world.cluster()["status"].get("observedGeneration") == 3, "gen 3 seen"
        )
        await world.eventually(
            lambda: world.condition("Paused").get("observedGeneration") == 3, "paused at 3"
        )
        # ... and none of them repaired or changed a child.
        assert get(kmock, SERVICES, "arena") is None
        deployment = get(kmock, DEPLOYMENTS, "arena")
        assert deployment["spec"]["template"]["spec"]["containers"][0]["image"] != "gamesync:2"
        history = kmock.objects[DEPLOYMENTS, NS, "arena"].history
        assert all(
            v is None or v["spec"]["template"]["spec"]["containers"][0]["image"] != "gamesync:2"
            for v in history[writes_before - 1 :]
        )

        await world.patch_cluster({"spec": {"paused": False}})
        await world.eventually(
            lambda: (
                get(kmock, SERVICES, "arena") is not None
                and get(kmock, DEPLOYMENTS, "arena")["spec"]["template"]["spec"]["containers"][0][
                    "image"
                ]
                == "gamesync:2"
            ),
            "unpaused: repaired and updated",
        )
        await world.eventually(
            lambda: world.condition("Paused").get("status") == "False", "Paused=False"
        )


async def test_a_bad_spec_gets_a_condition_with_a_reason_and_no_children(kmock: Any) -> None:
    async with running_operator(kmock) as world:
        await world.apply(raw_spec(autoscaling={"minReplicas": 5, "maxReplicas": 3}))
        await world.eventually(
            lambda: world.condition("Accepted").get("reason") == "InvalidReplicaBounds",
            "a reasoned condition",
        )
        assert world.condition("Accepted")["status"] == "False"
        assert world.condition("Ready")["reason"] == "ReplicasNotReady"  # nothing serves yet
        assert world.condition("Degraded")["status"] == "True"
        assert "minReplicas 5 exceeds maxReplicas 3" in world.condition("Degraded")["message"]
        assert get(kmock, DEPLOYMENTS, "arena") is None
        # Fixing the spec is all it takes; the operator never crash-looped.
        await world.patch_cluster({"spec": {"autoscaling": {"minReplicas": 2, "maxReplicas": 3}}})
        await world.eventually(lambda: _ready(world), "Ready=True after the fix")


async def test_tracing_changes_reach_gateways_through_the_configmap_without_a_rollout(
    kmock: Any,
) -> None:
    async with running_operator(kmock) as world:
        await world.apply(raw_spec())
        await world.eventually(lambda: _ready(world), "Ready=True")
        template = get(kmock, DEPLOYMENTS, "arena")["spec"]["template"]
        old_hash = world.cluster()["status"]["runtimeConfigHash"]
        world.kubelet_frozen = True
        tracing = {"enabled": True, "endpoint": "http://otel:4318", "ratio": 0.5}
        await world.patch_cluster({"spec": {"tracing": tracing}})

        await world.eventually(
            lambda: world.cluster()["status"].get("runtimeConfigHash") not in (None, old_hash),
            "a new hash",
        )
        await world.eventually(
            lambda: "RuntimeConfigPropagating" in world.condition("Progressing").get("reason", ""),
            "Progressing while gateways apply it",
        )
        cm = get(kmock, CONFIGMAPS, "arena-runtime")
        assert json.loads(cm["data"]["runtime.json"])["tracing"]["ratio"] == 0.5
        world.kubelet_frozen = False
        await world.eventually(
            lambda: world.condition("Progressing").get("status") == "False", "applied everywhere"
        )
        assert get(kmock, DEPLOYMENTS, "arena")["spec"]["template"] == template  # no restart


async def test_handlers_are_idempotent_under_replayed_events(kmock: Any) -> None:
    # KMock replays every object on each watch: creation is handled more than once.
    async with running_operator(kmock) as world:
        await world.apply(raw_spec())
        await world.eventually(lambda: _ready(world), "Ready=True")
        creates = [
            r
            for r in list(kmock)
            if str(r.method).upper().endswith("POST")
            and r.resource is not None
            and r.resource.plural == "deployments"
        ]
        assert len(creates) == 1
        signer_versions = kmock.objects[SECRETS, NS, "arena-signer"].history
        assert len(signer_versions) == 1  # keys were generated once, never overwritten
        assert get(kmock, CR, "arena")["status"]["signingKeys"]["keyGeneration"] == 1


async def test_a_missing_gateway_api_is_a_degraded_condition_not_a_crash(kmock: Any) -> None:
    async with running_operator(kmock, gateway_api=False) as world:
        await world.apply(raw_spec())
        await world.eventually(
            lambda: world.condition("Degraded").get("reason") == "HTTPRouteUnavailable", "Degraded"
        )
        assert (
            "gateway.networking.k8s.io/v1 HTTPRoute is not served"
            in world.condition("Degraded")["message"]
        )
        assert world.condition("Ready")["status"] == "False"
        # Everything else is still in place; switching to Ingress makes the cluster Ready.
        assert get(kmock, DEPLOYMENTS, "arena") is not None
        await world.patch_cluster({"spec": {"exposure": {"mode": "Ingress"}}})
        await world.eventually(lambda: _ready(world), "Ready=True with an Ingress")
        assert get(kmock, "networking.k8s.io/v1/ingresses", "arena") is not None


async def test_manual_mode_follows_spec_replicas_as_kubectl_scale_sets_them(kmock: Any) -> None:
    async with running_operator(kmock) as world:
        await world.apply(
            raw_spec(autoscaling={"mode": "None"}, gateway={"image": "gw:1", "replicas": 3})
        )
        await world.eventually(lambda: len(world.pods()) == 3, "three pods")
        # `kubectl scale gsc arena --replicas=5` writes spec.gateway.replicas via /scale.
        await world.patch_cluster({"spec": {"gateway": {"replicas": 5}}})
        await world.eventually(lambda: len(world.pods()) == 5, "five pods")
        await world.eventually(
            lambda: world.cluster()["status"].get("readyReplicas") == 5, "status"
        )
        assert world.cluster()["status"]["autoscaling"] == {"owner": "Spec"}


async def test_an_unreadable_signer_secret_is_reported_and_never_overwritten(kmock: Any) -> None:
    async with running_operator(kmock) as world:
        await world.apply(raw_spec())
        await world.eventually(lambda: _ready(world), "Ready=True")
        garbage = {"data": {"signer.json": "bm90IGpzb24="}}  # "not json"
        await world.patch(f"/api/v1/namespaces/{NS}/secrets/arena-signer", garbage)
        await world.eventually(
            lambda: world.condition("KeysReady").get("reason") == "SignerSecretInvalid",
            "KeysReady=False",
        )
        assert world.condition("Ready")["status"] == "False"
        assert world.condition("Degraded")["reason"] == "SignerSecretInvalid"

        def signer_reads() -> int:
            return sum(
                1
                for r in list(kmock)
                if r.resource is not None
                and r.resource.plural == "secrets"
                and r.name == "arena-signer"
            )

        world.clock.advance(31 * 86400)  # a rotation is due, but not on top of unknown keys
        seen = signer_reads()
        await world.eventually(
            lambda: signer_reads() >= seen + 2, "two more passes read the Secret"
        )
        assert world.condition("Degraded")["reason"] == "SignerSecretInvalid"
        assert get(kmock, SECRETS, "arena-signer")["data"] == garbage["data"]


async def test_missing_rbac_is_a_degraded_condition_with_the_servers_message(kmock: Any) -> None:
    async with running_operator(kmock) as world:
        forbidden = {
            "kind": "Status",
            "apiVersion": "v1",
            "status": "Failure",
            "reason": "Forbidden",
            "message": 'pods is forbidden: cannot list resource "pods"',
            "code": 403,
        }
        kmock[kmock.resource("v1/pods")] << 403 << forbidden
        await world.apply(raw_spec())
        await world.eventually(
            lambda: world.condition("Degraded").get("reason") == "Forbidden", "Forbidden"
        )
        assert 'cannot list resource "pods"' in world.condition("Degraded")["message"]
        # The pass could not look at the pods: whether the fleet serves is not known.
        assert world.condition("Ready")["status"] == "Unknown"


async def test_switching_exposure_replaces_the_route_with_an_ingress(kmock: Any) -> None:
    route, ingress = "gateway.networking.k8s.io/v1/httproutes", "networking.k8s.io/v1/ingresses"
    async with running_operator(kmock) as world:
        await world.apply(raw_spec())
        await world.eventually(lambda: get(kmock, route, "arena"), "an HTTPRoute")
        await world.patch_cluster(
            {"spec": {"exposure": {"mode": "Ingress", "host": "play.example.com"}}}
        )
        await world.eventually(
            lambda: get(kmock, ingress, "arena") is not None and get(kmock, route, "arena") is None,
            "the Ingress replaces the HTTPRoute",
        )


async def test_a_failed_jwks_write_stops_the_signer_from_using_an_unpublished_key(
    kmock: Any,
) -> None:
    async with running_operator(kmock) as world:
        await world.apply(raw_spec())
        await world.eventually(lambda: _ready(world), "Ready=True")
        broken = {
            "kind": "Status",
            "apiVersion": "v1",
            "status": "Failure",
            "code": 500,
            "reason": "InternalError",
        }
        kmock[f"patch /api/v1/namespaces/{NS}/secrets/arena-jwks"] << 500 << broken
        # The signer Secret is lost: new keys must be published before any signer holds them.
        await world.delete(f"/api/v1/namespaces/{NS}/secrets/arena-signer")
        await world.eventually(
            lambda: world.condition("Degraded").get("reason") == "ApiError", "Degraded"
        )
        assert get(kmock, SECRETS, "arena-signer") is None


async def test_mode_switches_create_update_and_delete_each_optional_child(kmock: Any) -> None:
    route, ingress = "gateway.networking.k8s.io/v1/httproutes", "networking.k8s.io/v1/ingresses"
    hpa, scaled = "autoscaling/v2/horizontalpodautoscalers", "keda.sh/v1alpha1/scaledobjects"
    policy, pdb = "networking.k8s.io/v1/networkpolicies", "policy/v1/poddisruptionbudgets"
    keda = {"mode": "KEDA", "keda": {"serverAddress": "http://prometheus:9090"}}
    async with running_operator(kmock) as world:
        await world.apply(raw_spec(autoscaling=keda))
        await world.eventually(lambda: get(kmock, scaled, "arena"), "a ScaledObject")

        async def change(patch: dict[str, Any], done: Any, what: str) -> None:
            await world.patch_cluster({"spec": patch})
            await world.eventually(done, what)

        await change(
            {"autoscaling": {**keda, "maxReplicas": 7}},
            lambda: get(kmock, scaled, "arena")["spec"]["maxReplicaCount"] == 7,
            "the ScaledObject updated",
        )
        await change(
            {"autoscaling": {"mode": "HPA"}},
            lambda: get(kmock, hpa, "arena") and get(kmock, scaled, "arena") is None,
            "an HPA instead",
        )
        await change(
            {"autoscaling": {"mode": "HPA", "maxReplicas": 8}},
            lambda: get(kmock, hpa, "arena")["spec"]["maxReplicas"] == 8,
            "the HPA updated",
        )
        await change(
            {"autoscaling": {"mode": "Operator"}, "gateway": {"maxUnavailable": 2}},
            lambda: (
                get(kmock, hpa, "arena") is None
                and get(kmock, pdb, "arena")["spec"]["maxUnavailable"] == 2
            ),
            "no HPA, the PDB updated",
        )
        await change(
            {"exposure": {"httpRoute": {"parentRefs": [{"name": "other"}]}}},
            lambda: get(kmock, route, "arena")["spec"]["parentRefs"][0]["name"] == "other",
            "the HTTPRoute updated",
        )
        await change(
            {"exposure": {"mode": "Ingress", "host": "a.example.com"}},
            lambda: get(kmock, ingress, "arena") is not None,
            "an Ingress",
        )
        await change(
            {"exposure": {"mode": "Ingress", "host": "b.example.com"}},
            lambda: get(kmock, ingress, "arena")["spec"]["rules"][0]["host"] == "b.example.com",
            "the Ingress updated",
        )
        await change(
            {"exposure": {"mode": "None"}, "networkPolicy": {"monitoringNamespace": "prom"}},
            lambda: (
                get(kmock, ingress, "arena") is None
                and "prom" in json.dumps(get(kmock, policy, "arena"))
            ),
            "no Ingress, the NetworkPolicy updated",
        )
        # A person removes a field the operator set: nobody owns it any more, so it comes back.
        response = await world.api.patch(
            SERVICE_PATH,
            json=[{"op": "remove", "path": "/spec/ports/0/appProtocol"}],
            headers={"Content-Type": "application/json-patch+json"},
        )
        response.raise_for_status()
        await world.patch_cluster({"spec": {"gateway": {"logLevel": "debug"}}})
        await world.eventually(
            lambda: (
                get(kmock, SERVICES, "arena")["spec"]["ports"][0].get("appProtocol")
                == "kubernetes.io/ws"
            ),
            "the removed field restored",
        )
