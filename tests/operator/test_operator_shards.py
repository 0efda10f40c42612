"""Game-affine shards (`spec.gateway.shards`): what is rendered, and a fleet changing its count."""

from __future__ import annotations

from typing import Any

import pytest
from gsc_builders import make_spec, raw_spec
from kmock_world import DEPLOYMENTS, SERVICES, World, get, running_operator

from gamesync.settings import load_settings
from gamesync_operator import crd, desired, shards
from gamesync_operator.errors import SpecError
from gamesync_operator.names import SHARD_LABEL
from gamesync_operator.spec import parse_spec

OWNER = desired.Owner("arena", "games", "uid-1234")
HPAS = "autoscaling/v2/horizontalpodautoscalers"


def _named(objs: list[dict[str, Any]], kind: str) -> dict[str, dict[str, Any]]:
    return {o["metadata"]["name"]: o for o in objs if o["kind"] == kind}


def _env(deployment: dict[str, Any]) -> dict[str, str]:
    container = deployment["spec"]["template"]["spec"]["containers"][0]
    return {e["name"]: e["value"] for e in container["env"] if "value" in e}


# what is rendered --------------------------------------------------------------------------------


def test_one_shard_renders_exactly_the_fleet_of_before() -> None:
    one = desired.children(make_spec(gateway={"shards": 1}), OWNER, 3)
    default = desired.children(make_spec(), OWNER, 3)
    assert one == default
    (deployment,) = _named(one, "Deployment").values()
    assert deployment["metadata"]["name"] == "arena"
    assert "GAMESYNC_SHARD" not in _env(deployment)
    assert SHARD_LABEL not in deployment["spec"]["template"]["metadata"]["labels"]


def test_k_shards_are_k_deployments_each_starting_its_pods_as_its_shard() -> None:
    objs = desired.children(make_spec(gateway={"shards": 3}), OWNER, 2)
    deployments = _named(objs, "Deployment")
    assert sorted(deployments) == ["arena-s0", "arena-s1", "arena-s2"]
    for index in range(3):
        dep = deployments[f"arena-s{index}"]
        assert dep["spec"]["replicas"] == 2  # replicas are per shard
        selector = dep["spec"]["selector"]["matchLabels"]
        assert selector[SHARD_LABEL] == str(index)
        assert selector.items() <= dep["spec"]["template"]["metadata"]["labels"].items()
        env = _env(dep)
        assert (env["GAMESYNC_SHARD"], env["GAMESYNC_SHARDS"]) == (str(index), "3")
        # the gateway takes what the operator sets: shard i of K
        settings = load_settings(dev=True, shard=env["GAMESYNC_SHARD"], shards="3")
        assert settings.shard_identity.announcement() == {"shards": 3, "shard": index}
        spread = dep["spec"]["template"]["spec"]["topologySpreadConstraints"][0]
        assert spread["labelSelector"]["matchLabels"] == selector  # each shard spread by itself


def test_each_shard_has_a_service_and_one_service_still_selects_every_pod() -> None:
    services = _named(desired.children(make_spec(gateway={"shards": 2}), OWNER, 2), "Service")
    assert sorted(services) == ["arena", "arena-internal", "arena-s0", "arena-s1"]
    assert SHARD_LABEL not in services["arena"]["spec"]["selector"]
    assert SHARD_LABEL not in services["arena-internal"]["spec"]["selector"]
    assert services["arena-s1"]["spec"]["selector"][SHARD_LABEL] == "1"
    assert services["arena-s1"]["spec"]["ports"] == services["arena"]["spec"]["ports"]


def _route_backends(route: dict[str, Any]) -> dict[str, str]:
    out = {}
    for rule in route["spec"]["rules"]:
        (backend,) = rule["backendRefs"]
        for match in rule["matches"]:
            out[match["path"]["type"] + " " + match["path"]["value"]] = backend["name"]
    return out


def test_the_route_sends_each_shards_paths_to_its_service_and_the_rest_spread() -> None:
    route = desired.http_route(make_spec(gateway={"shards": 2}))
    assert _route_backends(route) == {
        "PathPrefix /ws": "arena",
        "Exact /v1/shards": "arena",
        "PathPrefix /ws/s/0": "arena-s0",
        "PathPrefix /ws/s/1": "arena-s1",
    }
    websockets = [r for r in route["spec"]["rules"] if r["backendRefs"][0]["name"] != "arena"]
    assert all(r["timeouts"] == {"request": "0s"} for r in websockets)
    everything = desired.http_route(make_spec(gateway={"shards": 2}, exposure={"path": "/"}))
    assert _route_backends(everything)["PathPrefix /sse/s/1"] == "arena-s1"


def test_the_ingress_has_the_same_paths() -> None:
    spec = make_spec(gateway={"shards": 2}, exposure={"mode": "Ingress", "host": "play.example"})
    paths = desired.ingress(spec)["spec"]["rules"][0]["http"]["paths"]
    found = {(p["pathType"], p["path"]): p["backend"]["service"]["name"] for p in paths}
    assert found == {
        ("Prefix", "/ws"): "arena",
        ("Exact", "/v1/shards"): "arena",
        ("Prefix", "/ws/s/0"): "arena-s0",
        ("Prefix", "/ws/s/1"): "arena-s1",
    }


def test_each_shard_gets_its_own_autoscaler_on_its_own_pods() -> None:
    hpas = _named(
        desired.children(
            make_spec(gateway={"shards": 2}, autoscaling={"mode": "HPA"}), OWNER, None
        ),
        "HorizontalPodAutoscaler",
    )
    assert {n: h["spec"]["scaleTargetRef"]["name"] for n, h in hpas.items()} == {
        "arena-s0": "arena-s0",
        "arena-s1": "arena-s1",
    }
    keda = desired.scaled_object(
        make_spec(
            gateway={"shards": 2},
            autoscaling={"mode": "KEDA", "keda": {"serverAddress": "http://prom:9090"}},
        ),
        1,
    )
    assert 'pod=~"arena-s1-.*"' in keda["spec"]["triggers"][0]["metadata"]["query"]


@pytest.mark.parametrize("shards", [0, 65, "two"])
def test_a_shard_count_outside_1_to_64_is_refused(shards: Any) -> None:
    with pytest.raises(SpecError):
        parse_spec("arena", "games", raw_spec(gateway={"image": "x", "shards": shards}))


# the fleet seen whole ----------------------------------------------------------------------------


def test_the_shards_are_summed_into_one_fleet() -> None:
    a = {"spec": {"replicas": 2}, "status": {"replicas": 2, "readyReplicas": 1}}
    b = {"spec": {"replicas": 2}, "status": {"replicas": 2, "readyReplicas": 2}}
    assert shards.fleet_deployment([a, None, b]) == {
        "spec": {"replicas": 4},
        "status": {"replicas": 4, "readyReplicas": 3, "updatedReplicas": 0, "availableReplicas": 0},
    }
    assert shards.fleet_deployment([a]) == a
    assert shards.fleet_deployment([None, None]) is None


def test_the_busiest_shard_sets_the_size_of_every_shard() -> None:
    pods = [
        {"metadata": {"name": "p0", "labels": {SHARD_LABEL: "0"}}},
        {"metadata": {"name": "p1", "labels": {SHARD_LABEL: "1"}}},
        {"metadata": {"name": "p2", "labels": {SHARD_LABEL: "1"}}},
    ]
    assert shards.busiest_shard(pods, {"p0": 500, "p1": 300, "p2": 250}, 2) == 550


def _pod(name: str, shard: str | None) -> dict[str, Any]:
    return {"metadata": {"name": name, "labels": {} if shard is None else {SHARD_LABEL: shard}}}


def test_pods_are_grouped_by_shard_and_another_layouts_pods_join_none() -> None:
    pods = [_pod("a", "0"), _pod("b", "1"), _pod("old", None), _pod("gone", "4"), _pod("x", "+1")]
    groups, strays = shards.by_shard(pods, 2)
    assert [[p["metadata"]["name"] for p in g] for g in groups] == [["a"], ["b"]]
    assert [p["metadata"]["name"] for p in strays] == ["old", "gone", "x"]
    # One shard: every pod is the fleet's, whatever its label says.
    (only,), none = shards.by_shard(pods, 1)
    assert (len(only), none) == (5, [])


def test_the_scale_subresource_reports_the_busiest_then_the_largest_shard() -> None:
    def sized(replicas: int) -> dict[str, Any]:
        return {"status": {"replicas": replicas}}

    pods = [_pod("a", "0"), _pod("b", "1"), _pod("c", "2"), _pod("old", None)]
    three = [sized(2), sized(2), sized(3)]
    assert shards.scale_shard(three, pods, {"a": 5, "b": 9, "c": 1, "old": 99}) == 1
    assert shards.scale_shard(three, pods, {}) == 2  # no figures: the largest
    assert shards.scale_shard([sized(2), None], pods, {}) == 0  # a tie: the lowest index
    assert shards.scale_shard([sized(2)], pods, {"a": 5}) is None  # one shard: the fleet


def test_a_change_of_count_retires_the_names_the_new_count_lacks() -> None:
    assert shards.retired_names("arena", 1, 3) == ["arena"]
    assert shards.retired_names("arena", 3, 1) == ["arena-s0", "arena-s1", "arena-s2"]
    assert shards.retired_names("arena", 4, 2) == ["arena-s2", "arena-s3"]
    assert shards.retired_names("arena", 2, 2) == []


# the operator against KMock ----------------------------------------------------------------------


def _deployments(world: World) -> dict[str, int]:
    from kmock_world import items

    # a Deployment without replicas has 1 (the API server defaults it; KMock does not)
    return {
        d["metadata"]["name"]: d["spec"].get("replicas", 1) for d in items(world.kmock, DEPLOYMENTS)
    }


async def test_a_sharded_cluster_serves_and_reports_the_fleet_whole(kmock: Any) -> None:
    async with running_operator(kmock) as world:
        world.load = lambda pod: 7
        await world.apply(raw_spec(gateway={"image": "ghcr.io/nommie/gamesync:0.1.0", "shards": 3}))
        await world.eventually(
            lambda: world.condition("Ready").get("status") == "True", "Ready=True"
        )
        assert _deployments(world) == {"arena-s0": 2, "arena-s1": 2, "arena-s2": 2}
        for name in ("arena", "arena-s0", "arena-s1", "arena-s2"):
            assert get(kmock, SERVICES, name) is not None, name
        await world.eventually(
            lambda: world.cluster()["status"].get("connections") == 42, "six pods' connections"
        )
        status = world.cluster()["status"]
        assert (status["replicas"], status["readyReplicas"], status["desiredReplicas"]) == (6, 6, 6)
        assert status["shards"] == 3
        # The scale subresource's pair is one shard's (all alike: the lowest index on a tie).
        assert status["shardReplicas"] == 2
        assert status["shardSelector"] == status["labelSelector"] + f",{SHARD_LABEL}=0"


def _at(obj: dict[str, Any], path: str) -> Any:
    """The value at a scale subresource path (`.spec.gateway.replicas`)."""
    for key in path.lstrip(".").split("."):
        obj = obj.get(key) or {}
    return obj


def _selected(kmock: Any, selector: str) -> list[str]:
    """The pods a `k=v,k=v` selector string selects, as an HPA lists them."""
    from kmock_world import PODS, items

    wanted = dict(term.split("=", 1) for term in selector.split(","))
    return [
        p["metadata"]["name"]
        for p in items(kmock, PODS)
        if wanted.items() <= p["metadata"]["labels"].items()
    ]


async def test_the_scale_subresource_reads_and_writes_one_unit_per_shard(kmock: Any) -> None:
    # An HPA on the cluster writes ceil(its metric's ratio x the pods its selector finds) to
    # the spec path; `kubectl get --subresource=scale` shows the status path next to it: all
    # three must count the same thing, one shard's pods.
    scale = crd.crd()["spec"]["versions"][0]["subresources"]["scale"]
    async with running_operator(kmock) as world:
        world.load = lambda pod: 50 if pod.startswith("arena-s2-") else 7
        await world.apply(
            raw_spec(
                gateway={"image": "ghcr.io/nommie/gamesync:0.1.0", "shards": 3, "replicas": 2},
                autoscaling={"mode": "None"},  # the scale subresource sets the size
            )
        )
        await world.eventually(
            lambda: world.cluster().get("status", {}).get("connections") == 128, "every pod's load"
        )
        cluster = world.cluster()
        spec_replicas = _at(cluster, scale["specReplicasPath"])
        status_replicas = _at(cluster, scale["statusReplicasPath"])
        selected = _selected(kmock, _at(cluster, scale["labelSelectorPath"]))
        assert (spec_replicas, status_replicas, len(selected)) == (2, 2, 2)
        assert all(n.startswith("arena-s2-") for n in selected)  # the busiest shard's pods
        assert cluster["status"]["replicas"] == 6  # the fleet total keeps its name


async def test_every_shard_is_scaled_for_the_busiest_one(kmock: Any) -> None:
    spec = raw_spec(
        gateway={"image": "ghcr.io/nommie/gamesync:0.1.0", "shards": 2},
        autoscaling={"minReplicas": 1, "maxReplicas": 5, "targetConnectionsPerPod": 100},
    )
    async with running_operator(kmock) as world:
        # shard 1's pods are busy (affine games), shard 0's idle: both grow to fit shard 1
        world.load = lambda pod: 150 if pod.startswith("arena-s1-") else 1
        await world.apply(spec)
        await world.eventually(
            lambda: _deployments(world) == {"arena-s0": 5, "arena-s1": 5}, "both shards at max"
        )


def _shard_loads(busy: int, first: int) -> Any:
    """Load by pod: shard 0's pods hold `busy` each; shard 1's first pod `first`, the rest 0."""
    seen: list[str] = []

    def load(pod: str) -> int:
        if pod.startswith("arena-s0-"):
            return busy
        if pod not in seen:
            seen.append(pod)
        return first if pod == seen[0] else 0

    return load


async def test_each_shard_is_rebalanced_toward_its_own_mean(kmock: Any) -> None:
    spec = raw_spec(
        gateway={"image": "ghcr.io/nommie/gamesync:0.1.0", "shards": 2},
        autoscaling={"mode": "None"},
    )
    async with running_operator(kmock) as world:
        # Fleet mean 550: shard 0's pods are above it, but a client they shed comes back to
        # shard 0; shard 1's first pod is below it, but twice its own shard's mean of 150.
        world.load = _shard_loads(busy=900, first=300)
        await world.apply(spec)
        shed = await world.eventually(
            lambda: [(n, g.sheds) for n, g in world.gateways.items() if g.sheds], "a shed request"
        )
        [(pod, [request])] = shed
        assert pod.startswith("arena-s1-")
        assert request["connections"] == 150
        await world.eventually(
            lambda: world.cluster()["status"].get("rebalance", {}).get("reason") == "Rebalancing",
            "status",
        )
        message = world.cluster()["status"]["rebalance"]["message"]
        assert f"shard 1 toward its mean of 150 ({pod} 150)" in message, message
        assert not any(g.sheds for n, g in world.gateways.items() if n.startswith("arena-s0-"))


async def test_a_shard_with_an_unready_pod_does_not_hold_back_the_others(kmock: Any) -> None:
    spec = raw_spec(
        gateway={"image": "ghcr.io/nommie/gamesync:0.1.0", "shards": 2},
        autoscaling={"mode": "None"},
    )
    async with running_operator(kmock) as world:
        world.load = _shard_loads(busy=500, first=300)
        world.pods_ready = False  # every pod starts unready: nothing is judged yet
        await world.apply(spec)
        await world.eventually(lambda: len(world.gateways) == 4, "four pods")
        unready = min(n for n in world.gateways if n.startswith("arena-s0-"))
        for name, gateway in world.gateways.items():
            gateway.ready = name != unready  # shard 0 keeps one pod starting (a rollout)
        await world.eventually(
            lambda: any(g.sheds for n, g in world.gateways.items() if n.startswith("arena-s1-")),
            "shard 1 rebalanced while shard 0 waits",
        )
        await world.eventually(
            lambda: (
                "shard 0 waits: "
                in world.cluster()["status"].get("rebalance", {}).get("message", "")
            ),
            "status says shard 0 waits",
        )
        assert not any(g.sheds for n, g in world.gateways.items() if n.startswith("arena-s0-"))


async def test_changing_the_shard_count_keeps_the_old_pods_until_the_new_shards_serve(
    kmock: Any,
) -> None:
    image = "ghcr.io/nommie/gamesync:0.1.0"
    async with running_operator(kmock) as world:
        await world.apply(raw_spec(gateway={"image": image}))
        await world.eventually(lambda: _deployments(world) == {"arena": 2}, "one fleet")
        world.pods_ready = False  # the new shards' pods start unready
        await world.patch_cluster({"spec": {"gateway": {"image": image, "shards": 2}}})
        await world.eventually(
            lambda: _deployments(world) == {"arena": 2, "arena-s0": 2, "arena-s1": 2},
            "new shards next to the old fleet",
        )
        await world.eventually(
            lambda: world.cluster()["status"].get("shards") == 1, "still served by one shard"
        )
        assert get(kmock, DEPLOYMENTS, "arena") is not None  # not retired before they serve
        for gateway in world.gateways.values():
            gateway.ready = True
        await world.eventually(
            lambda: _deployments(world) == {"arena-s0": 2, "arena-s1": 2}, "the old one retired"
        )
        await world.eventually(lambda: world.cluster()["status"].get("shards") == 2, "status")
        assert get(kmock, SERVICES, "arena") is not None  # the spread Service stays

        # and back: 2 -> 1 retires both shards and their Services
        world.pods_ready = True
        await world.patch_cluster({"spec": {"gateway": {"image": image, "shards": 1}}})
        await world.eventually(lambda: _deployments(world) == {"arena": 2}, "one fleet again")
        await world.eventually(
            lambda: (
                get(kmock, SERVICES, "arena-s0") is None
                and get(kmock, SERVICES, "arena-s1") is None
            ),
            "shard Services retired",
        )
        assert get(kmock, HPAS, "arena-s0") is None


async def test_each_shard_has_its_own_hpa_and_the_operator_never_fights_them(kmock: Any) -> None:
    spec = raw_spec(
        gateway={"image": "ghcr.io/nommie/gamesync:0.1.0", "shards": 2},
        autoscaling={"mode": "HPA", "minReplicas": 2, "maxReplicas": 9},
    )
    async with running_operator(kmock) as world:
        await world.apply(spec)
        await world.eventually(
            lambda: get(kmock, HPAS, "arena-s0") and get(kmock, HPAS, "arena-s1"), "two HPAs"
        )
        await world.eventually(lambda: len(_deployments(world)) == 2, "two Deployments")
        # shard 1's HPA scales its Deployment alone; shard 0 keeps its size
        before = _deployments(world)["arena-s0"]
        kmock.objects[DEPLOYMENTS, "games", "arena-s1"].patch({"spec": {"replicas": 5}})
        await world.eventually(
            lambda: world.cluster()["status"].get("readyReplicas") == before + 5, "status sums"
        )
        assert _deployments(world) == {"arena-s0": before, "arena-s1": 5}
        assert world.cluster()["status"]["autoscaling"] == {"owner": "HPA"}


def _deployment(
    shards: str | None,
    *,
    replicas: int = 2,
    ready: int = 2,
    updated: int = 2,
    generation: int = 3,
    observed: int = 3,
) -> dict[str, Any]:
    env = [] if shards is None else [{"name": "GAMESYNC_SHARDS", "value": shards}]
    return {
        "metadata": {"generation": generation},
        "spec": {"replicas": replicas, "template": {"spec": {"containers": [{"env": env}]}}},
        "status": {
            "observedGeneration": observed,
            "readyReplicas": ready,
            "updatedReplicas": updated,
        },
    }


def test_the_old_layout_goes_only_once_every_shard_has_rolled_to_the_new_count() -> None:
    assert shards.serves(_deployment("2"), 2)
    assert shards.serves(_deployment(None), 1)  # the one-shard Deployment has no variable
    assert not shards.serves(_deployment("4"), 2)  # a kept shard not yet rolled to the count
    assert not shards.serves(_deployment("2", observed=2), 2)  # its new spec not yet seen
    assert not shards.serves(_deployment("2", updated=1), 2)  # still rolling
    assert not shards.serves(_deployment("2", ready=0), 2)  # nothing ready
    assert not shards.serves(None, 2)
