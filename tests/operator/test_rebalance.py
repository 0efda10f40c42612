"""The rebalancer's decisions: who sheds how many, how fast, and when it must wait."""

from __future__ import annotations

import datetime as dt
from dataclasses import replace

from gamesync_operator.rebalance import SETTLE_SECONDS, FleetLoad, ShedRequest, decide
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
