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
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Mapping
from dataclasses import dataclass

from gamesync_operator.spec import RebalanceSpec

__all__ = ["FleetLoad", "RebalanceDecision", "ShedRequest", "decide"]

#: After the last move, how long the moved clients may take to land (the reconnect hint's
#: jitter reaches 2 s) before the fleet is judged again.
SETTLE_SECONDS = 5.0


@dataclass(frozen=True)
class FleetLoad:
    """The fleet as this pass saw it."""

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


def decide(
    load: FleetLoad,
    policy: RebalanceSpec,
    evacuation_rate: int,
    delay: float,
    now: dt.datetime,
    next_after: dt.datetime | None,
) -> RebalanceDecision:
    """The shed requests to send now (possibly none), and why."""
    if not policy.enabled:
        return RebalanceDecision((), "Disabled", "spec.rebalance.enabled is false", None)
    if load.running < 2:
        return RebalanceDecision((), "Balanced", "fewer than two pods", next_after)
    blockers = [
        (len(load.connections) < load.running, "some pods did not report their connections"),
        (load.ready < load.running, f"{load.running - load.ready} pod(s) not ready"),
        (load.draining > 0, f"{load.draining} pod(s) draining"),
        (load.shedding > 0, f"{load.shedding} pod(s) still shedding"),
        (not load.settled, "a rollout or scaling is under way"),
        (next_after is not None and now < next_after, "the last round is settling"),
    ]
    for blocked, why in blockers:
        if blocked:
            return _waiting(why, next_after)
    total = sum(load.connections.values())
    mean = total / len(load.connections)
    target = math.ceil(mean)
    requests = []
    for pod, count in sorted(load.connections.items()):
        excess = count - mean
        if excess > policy.absolute_threshold and count > mean * (
            1 + policy.relative_threshold_percent / 100
        ):
            move = count - target
            requests.append(ShedRequest(pod, move, move / evacuation_rate, delay))
    if not requests:
        return RebalanceDecision(
            (), "Balanced", f"every pod within the thresholds of the mean ({mean:.0f})", None
        )
    longest = max(r.delay + r.seconds for r in requests)
    moves = ", ".join(f"{r.pod} {r.connections}" for r in requests)
    return RebalanceDecision(
        tuple(requests),
        "Rebalancing",
        f"moving connections toward the fleet mean of {mean:.0f} "
        f"({moves}; at most {evacuation_rate}/s per pod)",
        now + dt.timedelta(seconds=longest + SETTLE_SECONDS),
    )
