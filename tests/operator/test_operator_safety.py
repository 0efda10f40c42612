"""The operator against KMock, where a platform security engineer would poke it.

Key compromise, a Redis outage, objects it does not own, fields others own, the image
allow-list, the NetworkPolicy and the namespaced (least-privilege) mode.
"""

from __future__ import annotations

import base64
import json
from typing import Any

from apply_emulator import managers
from gsc_builders import raw_spec
from kmock_world import (
    DEPLOYMENTS,
    NETWORKPOLICIES,
    NS,
    OPERATOR_PEER,
    SECRETS,
    SERVICES,
    World,
    get,
    running_operator,
    secret_json,
)

from gamesync.errors import AuthError
from gamesync.keys import KeySet, sign_token

DEPLOYMENT_PATH = f"/apis/apps/v1/namespaces/{NS}/deployments/arena"
LONG = 365 * 86400  # pyjwt's clock is the wall clock; liveness is judged on the fake clock


def _ready(world: World) -> bool:
    return world.condition("Ready").get("status") == "True"


def _replicas(kmock: Any) -> int:
    dep = get(kmock, DEPLOYMENTS, "arena")
    return int(dep["spec"].get("replicas", 1)) if dep else 0


def _jwks_kids(kmock: Any) -> set[str]:
    return {k["kid"] for k in secret_json(get(kmock, SECRETS, "arena-jwks"), "jwks.json")["keys"]}


def _reasons(world: World) -> set[str]:
    return {e.get("reason") for e in world.events()}


def _passes(kmock: Any) -> int:
    """Reconciliation passes so far: each starts by reading the GameSyncCluster afresh."""
    return sum(
        1
        for r in list(kmock)
        if r.headers.get("User-Agent", "").startswith("gamesync-operator")
        and r.resource is not None
        and r.resource.plural == "gamesyncclusters"
        and r.name == "arena"
        and str(r.method).upper().endswith("GET")
    )


async def _two_more_passes(world: World, kmock: Any) -> None:
    seen = _passes(kmock)
    await world.eventually(lambda: _passes(kmock) >= seen + 2, "two more passes")


# -- key compromise -----------------------------------------------------------------------------


async def test_a_compromise_revokes_active_and_next_and_gateways_refuse_their_tokens(
    kmock: Any,
) -> None:
    async with running_operator(kmock) as world:
        await world.apply(raw_spec())
        await world.eventually(lambda: _ready(world), "Ready=True")
        leaked = secret_json(get(kmock, SECRETS, "arena-signer"), "signer.json")
        # Tokens signed before the leak was noticed, and tokens an attacker mints with the
        # leaked `next` key (the old code promoted that very key to active).
        before = sign_token(leaked, "7", ttl=3600)
        forged = sign_token(leaked, "evil", ttl=3600, kid=leaked["next"])
        await world.patch_cluster(
            {"metadata": {"annotations": {"gamesync.nommie.dev/rotate-keys": "compromised-1"}}}
        )

        def done() -> bool:
            signer = secret_json(get(kmock, SECRETS, "arena-signer"), "signer.json")
            return signer["active"] not in (leaked["active"], leaked["next"]) and not (
                {leaked["active"], leaked["next"]} & _jwks_kids(kmock)
            )

        await world.eventually(done, "both leaked keys revoked and replaced")
        fresh = secret_json(get(kmock, SECRETS, "arena-signer"), "signer.json")
        assert {k["kid"] for k in fresh["keys"]} == {fresh["active"], fresh["next"]}
        assert _jwks_kids(kmock) == {fresh["active"], fresh["next"]}
        # The new public keys were published before the signer switched to them.
        jwks_versions = [
            {k["kid"] for k in json.loads(base64.b64decode(v["data"]["jwks.json"]))["keys"]}
            for v in kmock.objects[SECRETS, NS, "arena-jwks"].history
            if v is not None
        ]
        published = next(i for i, kids in enumerate(jwks_versions) if fresh["active"] in kids)
        assert {leaked["active"], leaked["next"]} <= jwks_versions[published]  # additions first
        # Gateways that loaded the new JWKS: revoked tokens refused, new ones accepted.
        await world.eventually(
            lambda: (
                world.gateways and all(fresh["active"] in g.kids for g in world.gateways.values())
            ),
            "gateways loaded the new JWKS",
        )
        after = sign_token(fresh, "7", ttl=3600)
        for gateway in world.gateways.values():
            keyset = KeySet.from_jwks(gateway.jwks)
            for token in (before, forged):
                try:
                    keyset.verify(token, leeway=LONG)
                except AuthError:
                    pass
                else:
                    raise AssertionError("a token of a revoked key was accepted")
            assert keyset.verify(after, leeway=LONG).user_id == "7"
        # Status and an Event say what happened and when.
        await world.eventually(
            lambda: (
                world.cluster()["status"]["signingKeys"].get("handledRotateRequest")
                == "compromised-1"
            ),
            "status records the request",
        )
        keys = world.cluster()["status"]["signingKeys"]
        assert {leaked["active"], leaked["next"]} <= set(keys["revokedKids"])
        assert keys["lastRevocationTime"] == world.clock.now.isoformat().replace("+00:00", "Z")
        await world.eventually(lambda: "KeysRevoked" in _reasons(world), "a KeysRevoked event")
        event = next(e for e in world.events() if e.get("reason") == "KeysRevoked")
        assert leaked["active"] in event["message"]
        assert leaked["next"] in event["message"]
        assert event["type"] == "Warning"


# -- scaling during a Redis outage --------------------------------------------------------------


async def _scaled_to_six(world: World, kmock: Any) -> None:
    spec = raw_spec(
        autoscaling={
            "minReplicas": 2,
            "maxReplicas": 6,
            "targetConnectionsPerPod": 100,
            "scaleDownStabilizationSeconds": 600,
            "scaleDownPeriodSeconds": 60,
        }
    )
    world.load = lambda pod: 250
    await world.apply(spec)
    await world.eventually(lambda: _replicas(kmock) == 6, "scaled up to six")
    await world.eventually(
        lambda: world.condition("ScalingActive").get("reason") == "CompleteStats", "steady"
    )


async def test_a_redis_outage_with_every_pod_unready_does_not_scale_down(kmock: Any) -> None:
    async with running_operator(kmock) as world:
        await _scaled_to_six(world, kmock)
        # Redis goes away: every gateway turns unready but keeps its sockets and its stats.
        world.outage(answers=True)
        await world.eventually(
            lambda: world.cluster()["status"].get("readyReplicas") == 0, "all pods unready"
        )
        for _ in range(3):  # well past the stabilisation window and several scale-down periods
            world.clock.advance(700)
            await _two_more_passes(world, kmock)
            assert _replicas(kmock) == 6
        assert world.cluster()["status"]["connections"] == 1500  # unready pods counted


async def test_gateways_that_do_not_report_are_no_reason_to_scale_down(kmock: Any) -> None:
    async with running_operator(kmock) as world:
        await _scaled_to_six(world, kmock)
        await world.eventually(
            lambda: world.cluster()["status"].get("connections") == 1500, "1500 connections"
        )
        world.outage(answers=False)  # unready and silent
        await world.eventually(
            lambda: world.condition("ScalingActive").get("reason") == "NoStats", "NoStats"
        )
        assert world.condition("ScalingActive")["status"] == "False"
        assert "0/6 running gateway pods reported" in world.condition("ScalingActive")["message"]
        for _ in range(3):
            world.clock.advance(700)
            await _two_more_passes(world, kmock)
            assert _replicas(kmock) == 6
        assert world.cluster()["status"]["autoscaling"]["reason"] == "NoData"
        assert world.cluster()["status"]["connections"] == 1500  # the last complete figure


# -- objects and fields the operator does not own ------------------------------------------------


async def test_a_secret_owned_by_someone_else_is_neither_adopted_nor_changed(kmock: Any) -> None:
    async with running_operator(kmock) as world:
        theirs = {
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {"name": "platform-keys", "namespace": NS, "labels": {"team": "platform"}},
            "data": {"jwks.json": base64.b64encode(b'{"keys": []}').decode()},
        }
        await world.create(f"/api/v1/namespaces/{NS}/secrets", theirs)
        await world.apply(raw_spec(signingKeys={"jwksSecretName": "platform-keys"}))
        await world.eventually(
            lambda: world.condition("Accepted").get("reason") == "NameConflict", "NameConflict"
        )
        assert "Secret platform-keys already exists" in world.condition("Accepted")["message"]
        assert world.condition("Degraded")["status"] == "True"
        await world.eventually(lambda: "NameConflict" in _reasons(world), "a NameConflict event")
        # Nothing changed: the Secret as it was, no owner reference, no child, no signer.
        history = kmock.objects[SECRETS, NS, "platform-keys"].history
        assert len(history) == 1
        assert "ownerReferences" not in get(kmock, SECRETS, "platform-keys")["metadata"]
        assert get(kmock, DEPLOYMENTS, "arena") is None
        assert get(kmock, SECRETS, "arena-signer") is None
        # Pointing the cluster at its own Secret name resolves it.
        await world.patch_cluster({"spec": {"signingKeys": {"jwksSecretName": "arena-jwks"}}})
        await world.eventually(lambda: _ready(world), "Ready=True")
        assert len(kmock.objects[SECRETS, NS, "platform-keys"].history) == 1


async def test_a_deployment_of_the_same_name_from_elsewhere_is_a_name_conflict(
    kmock: Any,
) -> None:
    async with running_operator(kmock) as world:
        other = {
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": {
                "name": "arena",
                "namespace": NS,
                "ownerReferences": [
                    {
                        "apiVersion": "apps/v1",
                        "kind": "ReplicaSet",
                        "name": "someone",
                        "uid": "uid-someone",
                        "controller": True,
                    }
                ],
            },
            "spec": {"replicas": 0, "template": {"metadata": {"labels": {"app": "other"}}}},
        }
        await world.create(f"/apis/apps/v1/namespaces/{NS}/deployments", other)
        await world.apply(raw_spec())
        await world.eventually(
            lambda: world.condition("Accepted").get("reason") == "NameConflict", "NameConflict"
        )
        assert "ReplicaSet someone (uid uid-someone)" in world.condition("Accepted")["message"]
        # Someone else's pods are not this cluster's fleet.
        assert world.condition("Ready")["reason"] == "ReplicasNotReady"
        stored = get(kmock, DEPLOYMENTS, "arena")
        assert stored["spec"] == other["spec"]
        assert stored["metadata"]["ownerReferences"] == other["metadata"]["ownerReferences"]
        assert {m for m, _, _ in managers(stored)} == {"kmock-world"}
        assert get(kmock, SERVICES, "arena") is None  # changes nothing at all
        assert get(kmock, SECRETS, "arena-signer") is None


async def test_an_hpa_owning_replicas_is_not_fought(kmock: Any) -> None:
    async with running_operator(kmock) as world:
        await world.apply(raw_spec(autoscaling={"mode": "HPA", "minReplicas": 2, "maxReplicas": 9}))
        await world.eventually(lambda: get(kmock, DEPLOYMENTS, "arena"), "the Deployment")
        # The HPA (kube-controller-manager) scales the Deployment.
        await world.patch(
            DEPLOYMENT_PATH, {"spec": {"replicas": 7}}, manager="kube-controller-manager"
        )
        await world.eventually(lambda: len(world.pods()) == 7, "seven pods")
        await world.eventually(lambda: _ready(world), "Ready=True")
        versions = len(kmock.objects[DEPLOYMENTS, NS, "arena"].history)
        # A spec change makes the operator apply the Deployment again.
        await world.patch_cluster({"spec": {"gateway": {"image": "gamesync:2"}}})
        await world.eventually(
            lambda: (
                get(kmock, DEPLOYMENTS, "arena")["spec"]["template"]["spec"]["containers"][0][
                    "image"
                ]
                == "gamesync:2"
            ),
            "the new image applied",
        )
        await world.eventually(lambda: _ready(world), "Ready=True")
        later = kmock.objects[DEPLOYMENTS, NS, "arena"].history[versions:]
        assert all(v is None or v["spec"]["replicas"] == 7 for v in later)
        assert world.condition("Degraded")["status"] == "False"  # no conflict, no fight
        owners = {
            m
            for m, _, paths in managers(get(kmock, DEPLOYMENTS, "arena"))
            if ("spec", "replicas") in paths
        }
        assert owners == {"kube-controller-manager"}


async def test_switching_to_an_hpa_hands_replicas_over_without_a_dip(kmock: Any) -> None:
    async with running_operator(kmock) as world:
        await world.apply(
            raw_spec(autoscaling={"mode": "None"}, gateway={"image": "gw:1", "replicas": 4})
        )
        await world.eventually(lambda: len(world.pods()) == 4, "four pods")
        versions = len(kmock.objects[DEPLOYMENTS, NS, "arena"].history)
        await world.patch_cluster(
            {"spec": {"autoscaling": {"mode": "HPA", "minReplicas": 2, "maxReplicas": 9}}}
        )
        await world.eventually(
            lambda: get(kmock, "autoscaling/v2/horizontalpodautoscalers", "arena"), "the HPA"
        )
        await world.eventually(
            lambda: world.cluster()["status"].get("autoscaling") == {"owner": "HPA"}, "HPA mode"
        )
        # Until the HPA writes replicas, the operator keeps the live value (no reset to 1).
        await world.patch(
            DEPLOYMENT_PATH, {"spec": {"replicas": 5}}, manager="kube-controller-manager"
        )
        await world.eventually(lambda: len(world.pods()) == 5, "the HPA's five pods")
        await world.patch_cluster({"spec": {"gateway": {"image": "gw:2"}}})
        await world.eventually(
            lambda: (
                get(kmock, DEPLOYMENTS, "arena")["spec"]["template"]["spec"]["containers"][0][
                    "image"
                ]
                == "gw:2"
            ),
            "an apply after the handover",
        )
        history = kmock.objects[DEPLOYMENTS, NS, "arena"].history[versions:]
        assert all(v is None or v["spec"].get("replicas", 1) >= 4 for v in history)
        assert _replicas(kmock) == 5
        holders = {
            m
            for m, _, paths in managers(get(kmock, DEPLOYMENTS, "arena"))
            if ("spec", "replicas") in paths
        }
        assert holders == {"kube-controller-manager"}


async def test_a_persons_annotation_survives_every_apply(kmock: Any) -> None:
    async with running_operator(kmock) as world:
        await world.apply(raw_spec())
        await world.eventually(lambda: _ready(world), "Ready=True")
        note = {"metadata": {"annotations": {"team.example.com/owner": "alice"}}}
        await world.patch(DEPLOYMENT_PATH, note, manager="kubectl-annotate")
        await world.patch_cluster({"spec": {"gateway": {"image": "gamesync:3"}}})
        await world.eventually(
            lambda: (
                get(kmock, DEPLOYMENTS, "arena")["spec"]["template"]["spec"]["containers"][0][
                    "image"
                ]
                == "gamesync:3"
            ),
            "the new image applied",
        )
        annotations = get(kmock, DEPLOYMENTS, "arena")["metadata"]["annotations"]
        assert annotations["team.example.com/owner"] == "alice"
        await world.eventually(lambda: _ready(world), "Ready=True")
        assert world.condition("Degraded")["status"] == "False"


# -- what a GameSyncCluster may ask for ----------------------------------------------------------


async def test_an_image_outside_the_allow_list_is_refused_and_nothing_is_created(
    kmock: Any,
) -> None:
    allowed = ("ghcr.io/nommie/gamesync-gateway:*",)
    async with running_operator(kmock, images=allowed) as world:
        await world.apply(raw_spec(gateway={"image": "registry.evil.example/miner:1"}))
        await world.eventually(
            lambda: world.condition("Accepted").get("reason") == "ImageNotAllowed", "refused"
        )
        assert "registry.evil.example/miner:1" in world.condition("Accepted")["message"]
        await world.eventually(lambda: "ImageNotAllowed" in _reasons(world), "an Event")
        assert get(kmock, DEPLOYMENTS, "arena") is None
        assert get(kmock, SECRETS, "arena-signer") is None
        await world.patch_cluster(
            {"spec": {"gateway": {"image": "ghcr.io/nommie/gamesync-gateway:0.1.0"}}}
        )
        await world.eventually(lambda: _ready(world), "Ready=True with an allowed image")


async def test_the_network_policy_admits_the_operator_and_can_be_switched_off(kmock: Any) -> None:
    spec = raw_spec(
        networkPolicy={
            "monitoringNamespace": "monitoring",
            "backendSelector": {"matchLabels": {"app": "game-backend"}},
        }
    )
    async with running_operator(kmock) as world:
        await world.apply(spec)
        await world.eventually(lambda: _ready(world), "Ready=True")
        policy = get(kmock, NETWORKPOLICIES, "arena")
        internal = next(r for r in policy["spec"]["ingress"] if r["ports"][0]["port"] == 9000)
        assert internal["from"][0] == OPERATOR_PEER.peer()
        assert len(internal["from"]) == 3
        assert get(kmock, SERVICES, "arena")["spec"]["ports"][0]["port"] == 8000
        assert len(get(kmock, SERVICES, "arena")["spec"]["ports"]) == 1
        assert get(kmock, SERVICES, "arena-internal")["spec"]["ports"][0]["port"] == 9000
        await world.patch_cluster({"spec": {"networkPolicy": {"enabled": False}}})
        await world.eventually(
            lambda: get(kmock, NETWORKPOLICIES, "arena") is None, "the NetworkPolicy removed"
        )


async def test_namespaced_mode_needs_nothing_cluster_scoped(kmock: Any) -> None:
    # The RBAC check on the way out holds this run to the chart's namespaced Role alone.
    async with running_operator(kmock, clusterwide=False) as world:
        await world.apply(raw_spec())
        await world.eventually(lambda: _ready(world), "Ready=True")
        await world.patch_cluster({"spec": {"exposure": {"mode": "Ingress"}}})
        await world.eventually(
            lambda: get(kmock, "gateway.networking.k8s.io/v1/httproutes", "arena") is None,
            "the HTTPRoute replaced",
        )


async def test_children_of_the_pre_apply_operator_are_taken_over_and_cleaned_up(
    kmock: Any,
) -> None:
    """An upgrade: the old client wrote children without a field manager (the API server named
    it after its User-Agent) and put the internal port on the public Service."""
    old_service = {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {
            "name": "arena",
            "namespace": NS,
            "ownerReferences": [
                {
                    "apiVersion": "gamesync.nommie.dev/v1alpha1",
                    "kind": "GameSyncCluster",
                    "name": "arena",
                    "uid": "uid-arena",
                    "controller": True,
                    "blockOwnerDeletion": True,
                }
            ],
        },
        "spec": {
            "type": "ClusterIP",
            "ports": [
                {"name": "http", "port": 8000, "targetPort": "http", "protocol": "TCP"},
                {"name": "internal", "port": 9000, "targetPort": "internal", "protocol": "TCP"},
            ],
        },
    }
    async with running_operator(kmock) as world:
        response = await world.api.post(
            f"/api/v1/namespaces/{NS}/services",
            json=old_service,
            headers={"User-Agent": "python-httpx/0.28.1"},
        )
        response.raise_for_status()
        await world.apply(raw_spec())
        await world.eventually(
            lambda: [p["port"] for p in get(kmock, SERVICES, "arena")["spec"]["ports"]] == [8000],
            "the internal port gone from the public Service",
        )
        await world.eventually(lambda: _ready(world), "Ready=True")
        owners = {m for m, _, _ in managers(get(kmock, SERVICES, "arena"))}
        assert owners == {"gamesync-operator"}
