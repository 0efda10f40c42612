"""The throughput scenario's pure parts: a window's verdict and the same-rate cost ratio."""

from __future__ import annotations

from typing import Any

from gamesync.bench.procs import CPU_CLOCK_S
from gamesync.bench.scenarios.throughput import MIN_TICKS, cost_ratio, per_unit_us, verdict


def window(**changes: Any) -> dict[str, Any]:
    row: dict[str, Any] = {
        "publish_rate": 1000.0,
        "lost": 0,
        "duplicates": 0,
        "out_of_order": 0,
        "skipped": 0,
        "latency_ms": {"p99": 3.0},
    }
    row.update(changes)
    return row


def test_a_window_passes_only_when_nothing_is_lost_and_the_tail_is_short() -> None:
    assert verdict(window(), 1000) is None
    assert verdict(window(publish_rate=900.0), 1000) == "load side"
    assert verdict(window(skipped=1), 1000) == "lost"
    assert verdict(window(out_of_order=1), 1000) == "lost"
    assert verdict(window(latency_ms={"p99": 51.0}), 1000) == "p99"


def row(
    system: str, run: int, rate: float, us: float | None, passed: bool = True
) -> dict[str, Any]:
    return {
        "system": system,
        "run": run,
        "rate": rate,
        "server_us_per_publish": us,
        "passed": passed,
    }


def test_cost_ratio_compares_the_two_systems_at_rates_both_passed() -> None:
    rows = [
        row("gamesync", 1, 2000, 100),
        row("floor", 1, 2000, 60),  # 0.6
        row("gamesync", 1, 3000, 80),
        row("floor", 1, 3000, 56),  # 0.7
        row("gamesync", 1, 4500, 70, passed=False),
        row("floor", 1, 4500, 50),  # GameSync failed here: not compared
        row("floor", 2, 2000, 40),  # no GameSync window at this (run, rate)
    ]
    assert cost_ratio(rows) == 0.65
    assert cost_ratio([row("floor", 1, 2000, 40)]) == 0.0
    # a window too short to measure (None) is not compared
    assert cost_ratio([row("gamesync", 1, 2000, None), row("floor", 1, 2000, 40)]) == 0.0


def test_cpu_per_unit_is_none_below_the_kernels_clock_resolution() -> None:
    enough = MIN_TICKS * CPU_CLOCK_S
    assert per_unit_us(enough, 1000, 1) == round(enough / 1000 * 1e6, 1)
    assert per_unit_us(enough * 0.99, 1000, 1) is None
    assert per_unit_us(0.0, 40, 1) is None
