"""Result summaries: percentiles, CDF points, the schema check and the Markdown digest."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from gamesync.bench.results import (
    Target,
    cdf_points,
    latency_summary,
    markdown,
    median,
    write_result,
)
from gamesync.bench.scenarios import SCENARIOS


def test_latency_summary_reports_the_tail() -> None:
    samples = np.arange(1, 1001, dtype=np.float64)
    summary = latency_summary(samples)
    assert summary["count"] == 1000
    assert summary["p50"] == pytest.approx(500.5)
    assert summary["p99"] == pytest.approx(990.01)
    assert summary["max"] == 1000.0


def test_latency_summary_of_nothing_is_zeros() -> None:
    assert latency_summary(np.zeros(0))["p99"] == 0.0


def test_cdf_points_rise_to_one_and_end_at_the_maximum() -> None:
    points = cdf_points(np.linspace(0.1, 10.0, 5000))
    fractions = [p[1] for p in points]
    assert fractions == sorted(fractions)
    assert points[-1] == [10.0, 1.0]


def test_median_of_three_runs() -> None:
    assert median([3.0, 1.0, 2.0]) == 2.0


def test_write_result_refuses_an_incomplete_payload(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="result misses"):
        write_result(tmp_path, {"scenario": "fanout", "stamp": "x"})


def test_written_result_round_trips_and_digests(tmp_path: Path) -> None:
    payload = {
        "schema": 1,
        "scenario": "fanout",
        "started": "now",
        "stamp": "s",
        "machine": {},
        "params": {},
        "summary": {},
        "invariants": {},
        "plots": [],
        "runs": [{"system": "raw", "connections": 10, "run": 1, "deliveries_per_s": 1234.5}],
        "targets": [Target("fanout N=10", ">= 0.75x", "0.80x", True)],
    }
    path = write_result(tmp_path, payload)
    loaded = json.loads(path.read_text())
    assert loaded["targets"][0] == {
        "name": "fanout N=10",
        "target": ">= 0.75x",
        "value": "0.80x",
        "met": True,
    }
    digest = markdown(loaded, SCENARIOS["fanout"].columns)
    assert "| fanout N=10 | >= 0.75x | 0.80x | met |" in digest
    assert "| raw | 10 | 1 |" in digest
