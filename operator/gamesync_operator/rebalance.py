"""Even load after a scale-up, pure: which gateways to ask to shed how many connections, how fast.

Websocket connections live for hours, so pods added by a scale-up only get newcomers while the
old pods keep every player. Like EMQX's Rebalance, a pod is a source when it holds more than
the fleet mean by both an absolute and a relative threshold; it is asked to move its excess
over the mean away, at no more than the evacuation rate. A shedding pod turns unready (the
Service stops sending it newcomers) and refuses upgrades, so the moved clients land on the
other pods; it waits `delay` seconds for the endpoints to drop it before the first move.

Never while the fleet is not settled: some pod did not report (the figures would be wrong), a
pod is unready (a Redis outage makes every pod unready; a rollout makes new ones), draining or
already shedding, or a rollout is under way.

With K game-affine shards (DESIGN §5) a client a pod sheds comes back to the same shard (its
path routes there), so each shard is judged on its own (`decide_shards`): a pod is compared
with its shard's mean, and a shard that is not settled waits without holding back the others.
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from gamesync_operator.spec import RebalanceSpec

__all__ = ["FleetLoad", "RebalanceDecision", "ShedRequest", "decide", "decide_shards"]

#: After the last move, how long the moved clients may take to land (the reconnect hint's
#: jitter reaches 2 s) before the fleet is judged again.
SETTLE_SECONDS = 5.0


@dataclass(frozen=True)
class FleetLoad:
    """The fleet (or, with K > 1, one shard of it) as this pass saw it."""

    connections: Mapping[str, int]  # per running pod that answered /v1/stats
    running: int  # running gateway pods
    ready: int  # of those, ready
    draining: int  # of those, draining (a rollout or scale-down is removing them)
    shedding: int  # of those, still shedding from an earlier request
    settled: bool  # the Deployment has every replica updated and ready (no rollout)


@dataclass(frozen=True)
class ShedRequest:
    """Ask `pod` to move `connections` away over `seconds`, after `delay` seconds."""

    pod: str
    connections: int
    seconds: float
    delay: float


@dataclass(frozen=True)
class RebalanceDecision:
    requests: tuple[ShedRequest, ...]
    reason: str  # Disabled | Waiting | Balanced | Rebalancing
    message: str
    next_after: dt.datetime | None  # no new round before this (the last round settling)


def _waiting(why: str, next_after: dt.datetime | None) -> RebalanceDecision:
    return RebalanceDecision((), "Waiting", why, next_after)


@dataclass(frozen=True)
class _Verdict:
    """One group's judgement before the rate limit of rounds: what to move and why."""

    requests: tuple[ShedRequest, ...]
    reason: str  # Waiting | Balanced | Rebalancing
    why: str  # what blocks it (Waiting), or why there is nothing to compare (Balanced)
    mean: float | None  # the connections each pod should hold, when compared


def _judge(load: FleetLoad, policy: RebalanceSpec, evacuation_rate: int, delay: float) -> _Verdict:
    """Whether one group of pods (clients move only among them) is settled, and who sheds."""
    if load.running < 2:
        return _Verdict((), "Balanced", "fewer than two pods", None)
    blockers = [
        (len(load.connections) < load.running, "some pods did not report their connections"),
        (load.ready < load.running, f"{load.running - load.ready} pod(s) not ready"),
        (load.draining > 0, f"{load.draining} pod(s) draining"),
        (load.shedding > 0, f"{load.shedding} pod(s) still shedding"),
        (not load.settled, "a rollout or scaling is under way"),
    ]
    for blocked, why in blockers:
        if blocked:
            return _Verdict((), "Waiting", why, None)
    mean = sum(load.connections.values()) / len(load.connections)
    target = math.ceil(mean)
    requests = []
    for pod, count in sorted(load.connections.items()):
        excess = count - mean
        if excess > policy.absolute_threshold and count > mean * (
            1 + policy.relative_threshold_percent / 100
        ):
            move = count - target
            requests.append(ShedRequest(pod, move, move / evacuation_rate, delay))
    reason = "Rebalancing" if requests else "Balanced"
    return _Verdict(tuple(requests), reason, "", mean)


def _round_ends(requests: tuple[ShedRequest, ...], now: dt.datetime) -> dt.datetime:
    """When the moved clients of this round have landed: the next round may start."""
    longest = max(r.delay + r.seconds for r in requests)
    return now + dt.timedelta(seconds=longest + SETTLE_SECONDS)


def _moves(requests: tuple[ShedRequest, ...]) -> str:
    return ", ".join(f"{r.pod} {r.connections}" for r in requests)


def decide(
    load: FleetLoad,
    policy: RebalanceSpec,
    evacuation_rate: int,
    delay: float,
    now: dt.datetime,
    next_after: dt.datetime | None,
) -> RebalanceDecision:
    """The shed requests to send now (possibly none), and why, for one fleet of pods."""
    if not policy.enabled:
        return RebalanceDecision((), "Disabled", "spec.rebalance.enabled is false", None)
    verdict = _judge(load, policy, evacuation_rate, delay)
    if verdict.reason == "Balanced" and verdict.mean is None:  # fewer than two pods
        return RebalanceDecision((), "Balanced", verdict.why, next_after)
    if verdict.reason == "Waiting":
        return _waiting(verdict.why, next_after)
    if next_after is not None and now < next_after:
        return _waiting("the last round is settling", next_after)
    mean = verdict.mean or 0.0
    if not verdict.requests:
        return RebalanceDecision(
            (), "Balanced", f"every pod within the thresholds of the mean ({mean:.0f})", None
        )
    return RebalanceDecision(
        verdict.requests,
        "Rebalancing",
        f"moving connections toward the fleet mean of {mean:.0f} "
        f"({_moves(verdict.requests)}; at most {evacuation_rate}/s per pod)",
        _round_ends(verdict.requests, now),
    )


def decide_shards(
    loads: Sequence[FleetLoad],
    policy: RebalanceSpec,
    evacuation_rate: int,
    delay: float,
    now: dt.datetime,
    next_after: dt.datetime | None,
    strays: int = 0,
) -> RebalanceDecision:
    """`decide` for a fleet of game-affine shards, each judged against its own mean.

    `loads` has one entry per shard (one entry: exactly `decide`). `strays` counts running
    pods of no current shard (another layout's, while the shard count changes): every client
    moves then anyway, so no shard is rebalanced. The settling window after a round stays one
    for the fleet (`status.rebalance.nextAfter`): it lasts seconds, and rounds of different
    shards started in the same pass share it.
    """
    if len(loads) == 1 and not strays:
        return decide(loads[0], policy, evacuation_rate, delay, now, next_after)
    if not policy.enabled:
        return RebalanceDecision((), "Disabled", "spec.rebalance.enabled is false", None)
    if strays:
        return _waiting(f"{strays} pod(s) outside the current shard layout", next_after)
    if next_after is not None and now < next_after:
        return _waiting("the last round is settling", next_after)
    verdicts = [
        (f"shard {i}", _judge(load, policy, evacuation_rate, delay)) for i, load in enumerate(loads)
    ]
    moving = [(shard, v) for shard, v in verdicts if v.requests]
    waiting = [(shard, v.why) for shard, v in verdicts if v.reason == "Waiting"]
    if moving:
        requests = tuple(r for _, v in moving for r in v.requests)
        parts = "; ".join(
            f"{shard} toward its mean of {v.mean:.0f} ({_moves(v.requests)})" for shard, v in moving
        )
        held = "".join(f"; {shard} waits: {why}" for shard, why in waiting)
        return RebalanceDecision(
            requests,
            "Rebalancing",
            f"moving connections within each shard: {parts}; "
            f"at most {evacuation_rate}/s per pod{held}",
            _round_ends(requests, now),
        )
    if waiting:
        return _waiting("; ".join(f"{shard}: {why}" for shard, why in waiting), next_after)
    means = ", ".join(
        f"{shard}: {v.mean:.0f}" if v.mean is not None else f"{shard}: {v.why}"
        for shard, v in verdicts
    )
    return RebalanceDecision(
        (), "Balanced", f"every pod within the thresholds of its shard's mean ({means})", None
    )
