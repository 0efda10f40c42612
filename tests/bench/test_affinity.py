"""The affinity scenario's arithmetic: the two unit costs solved from spread and affine."""

from __future__ import annotations

from typing import Any

from gamesync.bench.scenarios.affinity import unit_costs


def _row(placement: str, run: int, received: int, delivered: int, cpu_s: float) -> dict[str, Any]:
    return {
        "placement": placement,
        "run": run,
        "received_total": received,
        "delivered": delivered,
        "publish_cpu_s": cpu_s,
    }


def test_the_costs_per_envelope_and_per_delivery_are_solved_from_the_two_placements() -> None:
    # 40 us per envelope received, 10 us per delivery; spread receives 4x what affine does.
    rows = [
        _row("spread", 1, 40_000, 40_000, 40_000 * 40e-6 + 40_000 * 10e-6),
        _row("affine", 1, 10_000, 40_000, 10_000 * 40e-6 + 40_000 * 10e-6),
    ]
    assert unit_costs(rows) == {"us_per_received": 40.0, "us_per_delivery": 10.0}


def test_a_run_missing_a_placement_is_left_out() -> None:
    rows = [
        _row("spread", 1, 40_000, 40_000, 2.0),
        _row("affine", 1, 10_000, 40_000, 0.8),
        _row("spread", 2, 40_000, 40_000, 9.0),
    ]
    assert unit_costs(rows) == {"us_per_received": 40.0, "us_per_delivery": 10.0}
