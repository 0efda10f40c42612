"""Status conditions in the standard metav1.Condition shape (pure)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from gamesync_operator.keystore import format_time

__all__ = ["CONDITION_TYPES", "Condition", "merge_conditions"]

CONDITION_TYPES = ("Ready", "Progressing", "Degraded", "KeysReady", "Paused")


@dataclass(frozen=True)
class Condition:
    type: str
    status: str  # "True" | "False" | "Unknown"
    reason: str
    message: str


def merge_conditions(
    new: Sequence[Condition],
    previous: Sequence[Mapping[str, Any]] | None,
    generation: int | None,
    now: dt.datetime,
) -> list[dict[str, Any]]:
    """Conditions to write: lastTransitionTime moves only when a condition's status changes.

    Condition types not in `new` are kept as they were (another writer may own them).
    """
    old = {c.get("type"): c for c in previous or [] if isinstance(c, Mapping)}
    out: list[dict[str, Any]] = []
    for cond in new:
        before = old.pop(cond.type, None)
        changed = before is None or before.get("status") != cond.status
        entry: dict[str, Any] = {
            "type": cond.type,
            "status": cond.status,
            "reason": cond.reason,
            "message": cond.message,
            "lastTransitionTime": format_time(now)
            if changed or before is None
            else before.get("lastTransitionTime", format_time(now)),
        }
        if generation is not None:
            entry["observedGeneration"] = generation
        out.append(entry)
    out.extend(dict(c) for c in old.values())
    return out
