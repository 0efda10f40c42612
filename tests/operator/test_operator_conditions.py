"""Truthful status against KMock: Ready means serving and confirmed; monitoring; rebalancing."""

from __future__ import annotations

from typing import Any

from gsc_builders import raw_spec
from kmock_world import World, get, running_operator

PODMONITORS = "monitoring.coreos.com/v1/podmonitors"


def _ready(world: World) -> bool:
    return world.condition("Ready").get("status") == "True"


async def test_a_fleet_the_operator_cannot_read_is_not_ready(kmock: Any) -> None:
    async with running_operator(kmock) as world:
        await world.apply(raw_spec())
        await world.eventually(lambda: _ready(world), "Ready=True")
        # Port 9000 blocked (a NetworkPolicy, a firewall): the pods stay ready for the kubelet.
        for gateway in world.gateways.values():
            gateway.answers = False
        await world.eventually(
            lambda: world.condition("Ready").get("reason") == "GatewaysUnreachable",
            "Ready=False, GatewaysUnreachable",
        )
        assert world.condition("Ready")["status"] == "False"
        assert "2/2 ready gateways did not answer /v1/stats" in world.condition("Ready")["message"]
        for gateway in world.gateways.values():
            gateway.answers = True
        await world.eventually(lambda: _ready(world), "Ready=True again")


async def test_an_invalid_spec_change_is_refused_while_the_old_fleet_keeps_serving(
    kmock: Any,
) -> None:
    async with running_operator(kmock) as world:
        world.load = lambda pod: 10
        await world.apply(raw_spec())
        await world.eventually(lambda: _ready(world), "Ready=True")
        deployment = get(kmock, "apps/v1/deployments", "arena")
        await world.patch_cluster({"spec": {"autoscaling": {"minReplicas": 5, "maxReplicas": 3}}})
        await world.eventually(
            lambda: world.condition("Accepted").get("reason") == "InvalidReplicaBounds",
            "Accepted=False",
        )
        assert world.condition("Accepted")["status"] == "False"
        assert world.condition("Degraded")["reason"] == "InvalidReplicaBounds"
        # Serving stays visible: not an outage.
        assert (world.condition("Ready")["status"], world.condition("Ready")["reason"]) == (
            "True",
            "Serving",
        )
        assert world.cluster()["status"]["readyReplicas"] == 2
        assert get(kmock, "apps/v1/deployments", "arena") == deployment  # nothing changed
        await world.patch_cluster({"spec": {"autoscaling": {"minReplicas": 2, "maxReplicas": 3}}})
        await world.eventually(
            lambda: world.condition("Accepted").get("status") == "True", "Accepted again"
        )


async def test_a_pod_monitor_scrapes_the_internal_port_as_the_alert_rules_expect(
    kmock: Any,
) -> None:
    monitoring = {"podMonitor": {"enabled": True, "labels": {"release": "kps"}}}
    async with running_operator(kmock) as world:
        await world.apply(raw_spec(monitoring=monitoring))
        await world.eventually(lambda: get(kmock, PODMONITORS, "arena"), "a PodMonitor")
        monitor = get(kmock, PODMONITORS, "arena")
        assert monitor["metadata"]["labels"]["release"] == "kps"
        assert monitor["metadata"]["ownerReferences"][0]["uid"] == "uid-arena"
        await world.eventually(
            lambda: world.condition("Monitoring").get("reason") == "PodMonitor", "Monitoring=True"
        )
        monitoring["podMonitor"]["interval"] = "15s"
        await world.patch_cluster({"spec": {"monitoring": monitoring}})
        await world.eventually(
            lambda: (
                get(kmock, PODMONITORS, "arena")["spec"]["podMetricsEndpoints"][0].get("interval")
                == "15s"
            ),
            "the interval applied",
        )
        await world.patch_cluster({"spec": {"monitoring": {"podMonitor": {"enabled": False}}}})
        await world.eventually(
            lambda: get(kmock, PODMONITORS, "arena") is None, "the PodMonitor removed"
        )
        await world.eventually(
            lambda: world.condition("Monitoring").get("reason") == "Disabled", "Disabled"
        )


async def test_without_the_prometheus_operator_the_pod_monitor_is_skipped_with_a_note(
    kmock: Any,
) -> None:
    async with running_operator(kmock, monitoring=False) as world:
        await world.apply(raw_spec(monitoring={"podMonitor": {"enabled": True}}))
        await world.eventually(
            lambda: world.condition("Monitoring").get("reason") == "PodMonitorUnavailable",
            "the note",
        )
        assert "not served by this cluster" in world.condition("Monitoring")["message"]
        # Skipped, not a failure: the cluster is Ready and not Degraded.
        await world.eventually(lambda: _ready(world), "Ready=True")
        assert world.condition("Degraded")["status"] == "False", world.condition("Degraded")


async def test_after_a_scale_up_the_loaded_pod_is_asked_to_shed_toward_the_mean(
    kmock: Any,
) -> None:
    loads = {"arena-1": 900, "arena-2": 100}
    spec = raw_spec(autoscaling={"mode": "None"})  # two pods, as after a scale-up
    async with running_operator(kmock) as world:
        world.load = lambda pod: loads.get(pod, 0)
        await world.apply(spec)
        await world.eventually(
            lambda: "arena-1" in world.gateways and world.gateways["arena-1"].sheds,
            "a shed request",
        )
        [request] = world.gateways["arena-1"].sheds
        assert request["connections"] == 400  # 900 down to the mean of 500
        assert request["seconds"] == 0.4  # at the evacuation rate, 1,000/s
        assert request["delaySeconds"] == 6.0  # the endpoints drop the unready pod first
        assert world.gateways["arena-2"].sheds == []
        world.gateways["arena-1"].ready = False  # a shedding gateway fails /readyz
        await world.eventually(
            lambda: (
                world.condition("Progressing").get("reason") == "Rebalancing"
                and world.cluster()["status"]["readyReplicas"] == 1
            ),
            "Rebalancing, one pod unready",
        )
        # It still serves its own clients: not an outage.
        assert (world.condition("Ready")["status"], world.condition("Ready")["reason"]) == (
            "True",
            "Serving",
        )
        await world.eventually(
            lambda: "Rebalancing" in {e.get("reason") for e in world.events()}, "an Event"
        )
        # The shed ends and the load evened out: no more requests, Progressing completes.
        loads.update({"arena-1": 510, "arena-2": 490})
        world.gateways["arena-1"].shedding = False
        world.gateways["arena-1"].ready = True
        world.clock.advance(60)
        await world.eventually(
            lambda: world.cluster()["status"].get("rebalance", {}).get("reason") == "Balanced",
            "balanced",
        )
        assert len(world.gateways["arena-1"].sheds) == 1


async def test_no_rebalancing_during_a_redis_outage(kmock: Any) -> None:
    loads = {"arena-1": 900, "arena-2": 100}
    async with running_operator(kmock) as world:
        world.load = lambda pod: loads.get(pod, 0)
        world.outage()  # every pod unready before the first pass
        await world.apply(raw_spec(autoscaling={"mode": "None"}))
        await world.eventually(
            lambda: (
                "not ready"
                in world.cluster().get("status", {}).get("rebalance", {}).get("message", "")
            ),
            "waiting",
        )
        assert all(not g.sheds for g in world.gateways.values())
        assert world.cluster()["status"]["rebalance"]["reason"] == "Waiting"
