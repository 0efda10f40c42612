"""The conditions, decided from observations: Ready means serving and confirmed."""

from __future__ import annotations

from gamesync_operator.status import (
    CONDITION_TYPES,
    Condition,
    Fleet,
    Health,
    cluster_conditions,
    ready_condition,
    refused_conditions,
)

KEYS_OK = Condition("KeysReady", "True", "KeysLoaded", "ok")
SERVING = Fleet(floor=3, ready=3, unanswered=0)


def _conds(**overrides: object) -> dict[str, Condition]:
    base: dict[str, object] = {
        "want": 3,
        "fleet": SERVING,
        "updated": 3,
        "keys_ready": KEYS_OK,
        "scaling": Condition("ScalingActive", "True", "CompleteStats", "3/3"),
        "monitoring": Condition("Monitoring", "False", "Disabled", "off"),
        "runtime_stale": 0,
    }
    return {c.type: c for c in cluster_conditions(Health(**{**base, **overrides}))}


def test_a_converged_cluster_is_ready_accepted_and_not_progressing() -> None:
    c = _conds()
    assert tuple(c) == CONDITION_TYPES
    assert (c["Ready"].status, c["Ready"].reason) == ("True", "Serving")
    assert (c["Accepted"].status, c["Accepted"].reason) == ("True", "Valid")
    assert [c[t].status for t in ("Progressing", "Degraded", "Paused")] == ["False"] * 3


def test_ready_needs_replicas_then_answers_then_keys_then_exposure_each_with_its_reason() -> None:
    short = Fleet(floor=3, ready=1, unanswered=0)
    assert ready_condition(short, KEYS_OK).reason == "ReplicasNotReady"
    # Port 9000 blocked: the pods are ready, but nothing confirms what they run.
    silent = Fleet(floor=3, ready=3, unanswered=2)
    unreachable = ready_condition(silent, KEYS_OK)
    assert (unreachable.status, unreachable.reason) == ("False", "GatewaysUnreachable")
    assert "2/3 ready gateways did not answer /v1/stats" in unreachable.message
    unknown = Condition("KeysReady", "Unknown", "NoReadyGateways", "nobody confirmed")
    assert ready_condition(SERVING, unknown).reason == "NoReadyGateways"
    assert ready_condition(SERVING, None).status == "False"
    lagging = Condition("KeysReady", "False", "AwaitingPropagation", "1 gateway lacks k2")
    assert ready_condition(SERVING, lagging).reason == "AwaitingPropagation"
    unexposed = Fleet(floor=3, ready=3, unanswered=0, missing=("HTTPRoute/arena",))
    not_exposed = ready_condition(unexposed, KEYS_OK)
    assert (not_exposed.reason, not_exposed.message.split(" ")[0]) == (
        "NotExposed",
        "HTTPRoute/arena",
    )
    assert ready_condition(Fleet(floor=0, ready=0, unanswered=0), KEYS_OK).status == "False"


def test_problems_degrade_without_making_a_serving_fleet_look_down() -> None:
    broken = _conds(problems=(("FieldConflict", "Deployment/arena image"), ("X", "y")))
    assert (broken["Degraded"].status, broken["Degraded"].reason) == ("True", "FieldConflict")
    assert broken["Degraded"].message == "Deployment/arena image; y"
    assert broken["Ready"].status == "True"


def test_each_change_in_flight_is_progressing_with_its_reason() -> None:
    assert _conds(fleet=Fleet(3, 1, 0))["Progressing"].reason == "ScalingUp"
    assert _conds(updated=None)["Progressing"].reason == "RollingOut"
    assert _conds(runtime_stale=2)["Progressing"].reason == "RuntimeConfigPropagating"
    assert _conds(runtime_stale=2)["Ready"].status == "True"  # the old config still serves
    assert _conds(rebalancing="arena-1 moves 400")["Progressing"].reason == "Rebalancing"
    assert _conds(changed=("created Service/arena",))["Progressing"].reason == "Reconciling"


def test_an_autoscaled_cluster_is_ready_at_its_minimum() -> None:
    assert _conds(want=5, fleet=Fleet(2, 2, 0), updated=5)["Ready"].status == "True"


def test_a_refused_spec_says_so_in_accepted_while_the_old_fleet_still_serves() -> None:
    refused = {
        c.type: c
        for c in refused_conditions(
            SERVING, KEYS_OK, [("InvalidReplicaBounds", "min 5 > max 3"), ("X", "y")]
        )
    }
    assert (refused["Ready"].status, refused["Ready"].reason) == ("True", "Serving")
    assert (refused["Accepted"].status, refused["Accepted"].reason) == (
        "False",
        "InvalidReplicaBounds",
    )
    assert refused["Degraded"].message == "min 5 > max 3; y"
    assert refused["Progressing"].status == "False"
    # Nothing runs yet: then it is not Ready either, for that reason.
    nothing = refused_conditions(Fleet(0, 0, 0), None, [("ImageNotAllowed", "no")])
    assert nothing[0].reason == "ReplicasNotReady"
