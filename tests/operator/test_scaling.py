"""The operator's connection-based scaler: prompt up, stabilised one-by-one down."""

from __future__ import annotations

import datetime as dt

import pytest
from gsc_builders import make_spec

from gamesync_operator.scaling import ScalingState, decide, deletion_costs, recommend
from gamesync_operator.spec import AutoscalingSpec

T0 = dt.datetime(2026, 11, 26, tzinfo=dt.UTC)
S = dt.timedelta(seconds=1)


def _policy(**overrides: int) -> AutoscalingSpec:
    base = {
        "minReplicas": 2,
        "maxReplicas": 10,
        "targetConnectionsPerPod": 100,
        "scaleDownStabilizationSeconds": 300,
        "scaleDownPeriodSeconds": 60,
    }
    return make_spec(autoscaling={**base, **overrides}).autoscaling


@pytest.mark.parametrize(
    ("connections", "expected"),
    [(0, 2), (1, 2), (200, 2), (201, 3), (950, 10), (5000, 10)],
)
def test_recommendation_is_ceil_of_connections_over_target_clamped(
    connections: int, expected: int
) -> None:
    assert recommend(connections, _policy()) == expected


def test_scale_up_is_immediate_and_can_jump_several_pods() -> None:
    d = decide(2, 640, True, ScalingState(), _policy(), T0)
    assert (d.replicas, d.reason) == (7, "ScaledUp")
    assert d.state.last_scale_time == T0


def test_scale_up_works_on_partial_data_because_the_total_is_a_lower_bound() -> None:
    d = decide(2, 640, False, ScalingState(), _policy(), T0)
    assert d.replicas == 7


def test_scale_down_waits_out_the_window_then_removes_one_pod_per_period() -> None:
    policy = _policy()
    state = ScalingState()
    replicas = 6
    timeline = []
    for second in range(0, 601, 10):
        now = T0 + second * S
        d = decide(replicas, 150, True, state, policy, now)  # 150 connections need 2 pods
        if d.replicas != replicas:
            timeline.append((second, d.replicas))
        replicas, state = d.replicas, d.state
    # Nothing before the 300 s window; then one pod at a time, one per 60 s.
    assert timeline == [(300, 5), (360, 4), (420, 3), (480, 2)]


def test_a_load_spike_during_the_window_resets_it() -> None:
    policy = _policy()
    d1 = decide(4, 100, True, ScalingState(), policy, T0)
    assert d1.reason == "Stabilizing"
    d2 = decide(4, 400, True, d1.state, policy, T0 + 200 * S)  # back to needing 4
    assert d2.reason == "Steady"
    assert d2.state.below_since is None
    d3 = decide(4, 100, True, d2.state, policy, T0 + 350 * S)
    assert d3.replicas == 4  # a fresh window starts at 350 s
    d4 = decide(4, 100, True, d3.state, policy, T0 + 650 * S)
    assert d4.replicas == 3


def test_never_scales_down_when_some_pods_did_not_report() -> None:
    policy = _policy(scaleDownStabilizationSeconds=0)
    assert decide(5, 0, False, ScalingState(), policy, T0).replicas == 5
    assert decide(5, 0, True, ScalingState(), policy, T0).replicas == 4


def test_no_data_keeps_the_size_within_bounds() -> None:
    policy = _policy()
    assert decide(5, None, False, ScalingState(), policy, T0).replicas == 5
    assert decide(1, None, False, ScalingState(), policy, T0).replicas == 2
    assert decide(12, None, False, ScalingState(), policy, T0).replicas == 10


def test_out_of_bounds_sizes_are_clamped_at_once() -> None:
    policy = _policy(minReplicas=3, maxReplicas=4)
    assert decide(9, 100, True, ScalingState(), policy, T0).replicas == 4
    assert decide(1, 100, True, ScalingState(), policy, T0).replicas == 3


def test_deletion_costs_are_written_only_when_missing_or_changed_significantly() -> None:
    assert deletion_costs({"a": 10, "b": 500, "c": 0}, {"a": None, "b": 480, "c": 5}) == {
        "a": 10,
        "c": 0,
    }
    assert deletion_costs({"b": 560}, {"b": 500}) == {"b": 560}
