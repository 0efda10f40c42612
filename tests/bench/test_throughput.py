"""The throughput scenario's pure parts: a window's verdict and the same-rate cost ratio."""

from __future__ import annotations

from typing import Any

from gamesync.bench.scenarios.throughput import cost_ratio, verdict


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


def row(system: str, run: int, rate: float, us: float, passed: bool = True) -> dict[str, Any]:
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
