"""The operator's life around a GameSyncCluster: repairs without the timer, deletion without it."""

from __future__ import annotations

from typing import Any

import httpx
from gsc_builders import raw_spec
from kmock_world import CR, DEPLOYMENTS, NS, SERVICES, WORLD_AGENT, World, get, running_operator

from gamesync_operator.crd import GROUP, KIND, PLURAL, VERSION

CLUSTERS_PATH = f"/apis/{GROUP}/{VERSION}/namespaces/{NS}/{PLURAL}"
OLD_FINALIZER = "gamesync.nommie.dev/finalizer"
#: Far beyond any test's run: whatever is repaired was repaired by a watch, not by the timer.
NO_RESYNC = 3600.0


def _ready(world: World) -> bool:
    return world.condition("Ready").get("status") == "True"


async def test_a_deleted_service_and_deployment_come_back_without_waiting_for_the_resync(
    kmock: Any,
) -> None:
    async with running_operator(kmock, interval=NO_RESYNC) as world:
        await world.apply(raw_spec())
        # Two passes: the first one and (before this version) a kopf timer's first tick.
        await world.eventually(lambda: _ready(world) and _passes(world) >= 2, "two passes")
        await world.delete(f"/api/v1/namespaces/{NS}/services/arena")
        await world.eventually(
            lambda: get(kmock, SERVICES, "arena"), "the Service recreated", timeout=5
        )
        await world.delete(f"/apis/apps/v1/namespaces/{NS}/deployments/arena")
        await world.eventually(
            lambda: get(kmock, DEPLOYMENTS, "arena"), "the Deployment recreated", timeout=5
        )


async def test_deleting_a_cluster_needs_no_running_operator(kmock: Any) -> None:
    async with running_operator(kmock) as world:
        await world.apply(raw_spec())
        await world.eventually(lambda: _ready(world), "Ready=True")
        assert not world.cluster()["metadata"].get("finalizers")
    # The operator is stopped (uninstalled first, or its namespace went first): deleting works.
    async with httpx.AsyncClient(
        base_url=str(kmock.url).rstrip("/"), headers={"User-Agent": WORLD_AGENT}
    ) as api:
        response = await api.delete(f"{CLUSTERS_PATH}/arena")
        response.raise_for_status()
    assert get(kmock, CR, "arena") is None


async def test_the_finalizer_of_earlier_versions_is_removed_and_deletion_then_needs_no_operator(
    kmock: Any,
) -> None:
    async with running_operator(kmock) as world:
        body = {
            "apiVersion": f"{GROUP}/{VERSION}",
            "kind": KIND,
            "metadata": {
                "name": "arena",
                "namespace": NS,
                "uid": "uid-arena",
                "generation": 1,
                "resourceVersion": "1",
                "finalizers": [OLD_FINALIZER],
            },
            "spec": raw_spec(),
        }
        await world.create(CLUSTERS_PATH, body)
        await world.eventually(lambda: _ready(world), "Ready=True")
        await world.eventually(
            lambda: not world.cluster()["metadata"].get("finalizers"), "the old finalizer removed"
        )
    async with httpx.AsyncClient(
        base_url=str(kmock.url).rstrip("/"), headers={"User-Agent": WORLD_AGENT}
    ) as api:
        (await api.delete(f"{CLUSTERS_PATH}/arena")).raise_for_status()
    assert get(kmock, CR, "arena") is None


async def test_a_deleted_cluster_is_forgotten_its_series_dropped_and_no_pass_runs_for_it(
    kmock: Any,
) -> None:
    async with running_operator(kmock) as world:
        await world.apply(raw_spec())
        await world.apply(raw_spec(), name="other")  # its passes measure time below
        await world.eventually(lambda: _ready(world), "Ready=True")
        assert world.metrics is not None
        labels = {"namespace": NS, "name": "arena"}
        sample = world.metrics.registry.get_sample_value
        assert sample("gamesync_operator_desired_replicas", labels) == 2
        await world.delete(f"{CLUSTERS_PATH}/arena")
        await world.eventually(
            lambda: sample("gamesync_operator_desired_replicas", labels) is None,
            "the cluster's series dropped",
        )
        # A pass of the deleted cluster already running when the DELETED event came may still
        # read it once (and find it gone): count from the other cluster's next pass on.
        first = _cluster_reads(kmock, "other")
        await world.eventually(lambda: _cluster_reads(kmock, "other") > first, "one more pass")
        arena_reads, other_reads = _cluster_reads(kmock, "arena"), _cluster_reads(kmock, "other")
        # Five resyncs of the other cluster later, nothing read the deleted one again.
        await world.eventually(
            lambda: _cluster_reads(kmock, "other") >= other_reads + 5, "five more passes"
        )
        assert _cluster_reads(kmock, "arena") == arena_reads


def _passes(world: World) -> float:
    assert world.metrics is not None
    sample = world.metrics.registry.get_sample_value
    return sum(
        sample("gamesync_operator_reconciliations_total", {"result": r}) or 0.0
        for r in ("ok", "problems", "api_error")
    )


def _cluster_reads(kmock: Any, name: str) -> int:
    """GETs of one GameSyncCluster by the operator: each pass starts with one."""
    return sum(
        1
        for r in list(kmock)
        if r.headers.get("User-Agent", "").startswith("gamesync-operator")
        and r.resource is not None
        and r.resource.plural == PLURAL
        and r.name == name
        and str(r.method).upper().endswith("GET")
    )
