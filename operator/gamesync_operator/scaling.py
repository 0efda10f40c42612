"""The operator's connection-based scaler, pure (DESIGN §5 "scaling").

desired = ceil(total live connections / target per pod), clamped to [min, max]. Scale-up is
prompt; scale-down waits until the recommendation has stayed below the current size for the
stabilisation window, then removes one pod per period.
"""

from __future__ import annotations

import datetime as dt
import math
from dataclasses import dataclass, replace

from gamesync_operator.spec import AutoscalingSpec

__all__ = ["ScalingDecision", "ScalingState", "decide", "deletion_costs", "recommend"]


@dataclass(frozen=True)
class ScalingState:
    """What the scaler remembers between ticks (kept in status.autoscaling)."""

    below_since: dt.datetime | None = None
    last_scale_time: dt.datetime | None = None


@dataclass(frozen=True)
class ScalingDecision:
    replicas: int
    recommendation: int
    state: ScalingState
    reason: str  # ScaledUp | ScaledDown | Stabilizing | Steady | Clamped | NoData
    message: str


def recommend(total_connections: int, policy: AutoscalingSpec) -> int:
    """Pods needed for `total_connections`, clamped to the policy's bounds."""
    wanted = math.ceil(total_connections / policy.target_connections_per_pod)
    return max(policy.min_replicas, min(policy.max_replicas, wanted))


def decide(
    current: int,
    total_connections: int | None,
    complete: bool,
    state: ScalingState,
    policy: AutoscalingSpec,
    now: dt.datetime,
) -> ScalingDecision:
    """The replica count to set now.

    `total_connections` None means no pod answered; `complete` False means some ready pods did
    not answer, so the total is a lower bound: good enough to scale up, never to scale down.
    """
    if total_connections is None:
        clamped = max(policy.min_replicas, min(policy.max_replicas, current))
        return ScalingDecision(
            clamped,
            clamped,
            replace(state, below_since=None),
            "Clamped" if clamped != current else "NoData",
            "no gateway reported its connections; keeping the current size",
        )
    rec = recommend(total_connections, policy)
    if current < policy.min_replicas or current > policy.max_replicas:
        target = max(policy.min_replicas, min(policy.max_replicas, current))
        return ScalingDecision(
            target,
            rec,
            ScalingState(None, now),
            "Clamped",
            f"{current} replicas is outside [{policy.min_replicas}, {policy.max_replicas}]",
        )
    if rec > current:
        return ScalingDecision(
            rec,
            rec,
            ScalingState(None, now),
            "ScaledUp",
            f"{total_connections} connections need {rec} pods "
            f"at {policy.target_connections_per_pod} each",
        )
    if rec == current or not complete:
        why = "" if complete else " (some pods did not report; not scaling down)"
        return ScalingDecision(
            current, rec, replace(state, below_since=None), "Steady", f"{current} pods fit{why}"
        )
    below_since = state.below_since or now
    stable_for = (now - below_since).total_seconds()
    if stable_for < policy.scale_down_stabilization_seconds:
        return ScalingDecision(
            current,
            rec,
            replace(state, below_since=below_since),
            "Stabilizing",
            f"{rec} pods would do; waiting out the "
            f"{policy.scale_down_stabilization_seconds}s window",
        )
    last = state.last_scale_time
    if last is not None and (now - last).total_seconds() < policy.scale_down_period_seconds:
        return ScalingDecision(
            current,
            rec,
            replace(state, below_since=below_since),
            "Stabilizing",
            f"one pod per {policy.scale_down_period_seconds}s; next step later",
        )
    return ScalingDecision(
        current - 1,
        rec,
        ScalingState(below_since, now),
        "ScaledDown",
        f"removing one pod ({current} -> {current - 1}) towards {rec}",
    )


def deletion_costs(connections: dict[str, int], current: dict[str, int | None]) -> dict[str, int]:
    """pod-deletion-cost annotations worth writing: the least-loaded pod is removed first.

    Writes are rate-limited by significance: only when missing or off by more than 10 %.
    """
    changes: dict[str, int] = {}
    for pod, count in connections.items():
        old = current.get(pod)
        if old is None or abs(count - old) > max(1, old // 10):
            changes[pod] = count
    return changes
