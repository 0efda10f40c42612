"""The rebalancer's decisions: who sheds how many, how fast, and when it must wait."""

from __future__ import annotations

import datetime as dt
from dataclasses import replace

from gamesync_operator.rebalance import (
    SETTLE_SECONDS,
    FleetLoad,
    ShedRequest,
    decide,
    decide_shards,
)
from gamesync_operator.spec import RebalanceSpec

NOW = dt.datetime(2026, 12, 1, tzinfo=dt.UTC)
POLICY = RebalanceSpec(enabled=True, absolute_threshold=100, relative_threshold_percent=20)
STABLE = FleetLoad(
    connections={"a": 900, "b": 100}, running=2, ready=2, draining=0, shedding=0, settled=True
)


def test_the_loaded_pod_sheds_its_excess_over_the_mean_at_the_evacuation_rate() -> None:
    d = decide(STABLE, POLICY, evacuation_rate=1000, delay=6.0, now=NOW, next_after=None)
    assert d.requests == (ShedRequest("a", 400, 0.4, 6.0),)
    assert d.reason == "Rebalancing"
    assert d.next_after == NOW + dt.timedelta(seconds=6.4 + SETTLE_SECONDS)
    slow = decide(STABLE, POLICY, evacuation_rate=100, delay=6.0, now=NOW, next_after=None)
    assert slow.requests[0].seconds == 4.0  # never faster than the evacuation rate


def test_after_a_scale_up_every_old_pod_sheds_toward_the_mean() -> None:
    load = replace(
        STABLE,
        connections={"a": 1000, "b": 1000, "c": 1000, "d": 1000, "new": 0},
        running=5,
        ready=5,
    )
    d = decide(load, POLICY, 1000, 6.0, NOW, None)
    assert [(r.pod, r.connections) for r in d.requests] == [(p, 200) for p in "abcd"]


def test_both_thresholds_must_be_passed() -> None:
    # 60 above the mean: under the absolute threshold of 100.
    close = replace(STABLE, connections={"a": 560, "b": 440})
    assert decide(close, POLICY, 1000, 6.0, NOW, None).reason == "Balanced"
    # 150 above a mean of 5,000 is 3 %: under the relative threshold of 20 %.
    big = replace(STABLE, connections={"a": 5150, "b": 4850})
    assert decide(big, POLICY, 1000, 6.0, NOW, None).requests == ()


def test_it_waits_while_the_fleet_is_not_settled() -> None:
    cases = {
        "some pods did not report their connections": replace(STABLE, running=3),
        "1 pod(s) not ready": replace(STABLE, ready=1),  # a Redis outage, a new pod
        "1 pod(s) draining": replace(STABLE, draining=1),
        "1 pod(s) still shedding": replace(STABLE, shedding=1),
        "a rollout or scaling is under way": replace(STABLE, settled=False),
    }
    for why, load in cases.items():
        d = decide(load, POLICY, 1000, 6.0, NOW, None)
        assert (d.reason, d.message, d.requests) == ("Waiting", why, ()), why
    settling = decide(STABLE, POLICY, 1000, 6.0, NOW, NOW + dt.timedelta(seconds=1))
    assert settling.message == "the last round is settling"


def test_disabled_or_a_single_pod_never_sheds() -> None:
    off = replace(POLICY, enabled=False)
    assert decide(STABLE, off, 1000, 6.0, NOW, None).reason == "Disabled"
    alone = replace(STABLE, connections={"a": 900}, running=1, ready=1)
    assert decide(alone, POLICY, 1000, 6.0, NOW, None).requests == ()


# game-affine shards: a client a pod sheds comes back to the same shard -------------------------


def _shard(connections: dict[str, int], **changes: int | bool) -> FleetLoad:
    """A settled shard of these pods, every one ready and reporting, but for `changes`."""
    load = replace(
        STABLE, connections=connections, running=len(connections), ready=len(connections)
    )
    return replace(load, **changes)  # type: ignore[arg-type]


def test_a_busy_shard_is_not_asked_to_shed_toward_the_fleet_mean() -> None:
    busy, quiet = _shard({"a": 900, "b": 900}), _shard({"c": 100, "d": 100})
    d = decide_shards([busy, quiet], POLICY, 1000, 6.0, NOW, None)
    # The fleet mean is 500: a and b would shed 400 each, only for their clients to come back.
    assert (d.reason, d.requests) == ("Balanced", ())
    assert (
        d.message
        == "every pod within the thresholds of its shard's mean (shard 0: 900, shard 1: 100)"
    )


def test_a_pod_above_its_shards_mean_sheds_toward_it_even_below_the_fleet_mean() -> None:
    busy, quiet = _shard({"a": 1000, "b": 1000}), _shard({"c": 300, "d": 0})
    d = decide_shards([busy, quiet], POLICY, 1000, 6.0, NOW, None)
    # c holds 300, under the fleet mean of 575, but twice its shard's mean of 150.
    assert d.requests == (ShedRequest("c", 150, 0.15, 6.0),)
    assert d.reason == "Rebalancing"
    assert d.message == (
        "moving connections within each shard: shard 1 toward its mean of 150 (c 150); "
        "at most 1000/s per pod"
    )
    assert d.next_after == NOW + dt.timedelta(seconds=6.15 + SETTLE_SECONDS)


def test_a_shard_that_is_not_settled_does_not_hold_back_the_others() -> None:
    quiet = _shard({"c": 300, "d": 0})
    for why, rolling in {
        "a rollout or scaling is under way": _shard({"a": 900, "b": 100}, settled=False),
        "1 pod(s) not ready": _shard({"a": 900, "b": 100}, ready=1),
        "1 pod(s) draining": _shard({"a": 900, "b": 100}, draining=1),
        "1 pod(s) still shedding": _shard({"a": 900, "b": 100}, shedding=1),
        "some pods did not report their connections": _shard({"a": 900, "b": 100}, running=3),
    }.items():
        d = decide_shards([rolling, quiet], POLICY, 1000, 6.0, NOW, None)
        assert [r.pod for r in d.requests] == ["c"], why  # never a or b
        assert d.message.endswith(f"; shard 0 waits: {why}"), d.message
    # Nothing to move anywhere: the reason is the waiting shard's.
    d = decide_shards(
        [_shard({"a": 9, "b": 0}, settled=False), _shard({"c": 5})], POLICY, 1000, 6.0, NOW, None
    )
    assert (d.reason, d.message) == ("Waiting", "shard 0: a rollout or scaling is under way")


def test_pods_of_no_current_shard_or_the_last_round_settling_hold_back_every_shard() -> None:
    loads = [_shard({"a": 900, "b": 100}), _shard({"c": 300, "d": 0})]
    strays = decide_shards(loads, POLICY, 1000, 6.0, NOW, None, strays=2)
    assert (strays.reason, strays.message, strays.requests) == (
        "Waiting",
        "2 pod(s) outside the current shard layout",
        (),
    )
    later = NOW + dt.timedelta(seconds=1)
    settling = decide_shards(loads, POLICY, 1000, 6.0, NOW, later)
    assert (settling.message, settling.next_after) == ("the last round is settling", later)
    off = decide_shards(loads, replace(POLICY, enabled=False), 1000, 6.0, NOW, None)
    assert off.reason == "Disabled"


def test_one_shard_is_judged_exactly_as_the_fleet() -> None:
    for load in (STABLE, replace(STABLE, ready=1), replace(STABLE, connections={"a": 5, "b": 5})):
        assert decide_shards([load], POLICY, 1000, 6.0, NOW, None) == decide(
            load, POLICY, 1000, 6.0, NOW, None
        )
