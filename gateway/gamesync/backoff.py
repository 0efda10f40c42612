"""Retry delays: capped exponential backoff with full jitter (pure, no clock, no I/O)."""

from __future__ import annotations

import random
from collections.abc import Callable

__all__ = ["full_jitter"]

#: Doubling stops here: 2**64 times any base is past every cap, and bigger powers are wasted work.
_MAX_DOUBLINGS = 64


def full_jitter(
    attempt: int, *, base: float, cap: float, rng: Callable[[], float] = random.random
) -> float:
    """Seconds before retry `attempt` (0 first): uniform in [0, min(cap, base * 2**attempt)).

    "Full jitter" spreads many retriers that failed at the same moment (every pod losing the
    same Redis) over the whole window instead of bringing them back in waves; its mean is half
    the exponential ceiling. `rng` returns a float in [0, 1), like `random.Random(seed).random`.
    """
    ceiling = min(cap, base * 2.0 ** min(max(attempt, 0), _MAX_DOUBLINGS))
    return rng() * ceiling
