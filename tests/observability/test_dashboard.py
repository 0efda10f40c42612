"""The dashboard reads right: per-second units on rates, bytes apart, windows that follow the
scrape interval, no panel on top of another (its queries run in test_prometheus.py)."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
DASHBOARD: dict[str, Any] = json.loads(
    (ROOT / "charts" / "gamesync-operator" / "files" / "grafana-dashboard.json").read_text()
)
PANELS: list[dict[str, Any]] = DASHBOARD["panels"]
RANGE = re.compile(r"\b(rate|irate|increase)\((.*?)\[([^\]]+)\]\)")
PER_SECOND = {"cps", "ops", "reqps", "Bps", "binBps"}


def _exprs(panel: dict[str, Any]) -> list[str]:
    return [target["expr"] for target in panel["targets"]]


def _unit(panel: dict[str, Any]) -> str:
    unit: str = panel["fieldConfig"]["defaults"]["unit"]
    return unit


def test_rates_use_the_rate_interval() -> None:
    """A fixed [1m] shows nothing at a 60 s scrape interval; $__rate_interval adapts."""
    windows = [
        (p["title"], m[0], m[2]) for p in PANELS for e in _exprs(p) for m in RANGE.findall(e)
    ]
    assert len(windows) >= 10
    for title, function, window in windows:
        if function == "increase":  # a count per fixed period, which the title names
            assert window == "15m", title
            assert "per 15 min" in title
        else:
            assert window == "$__rate_interval", title


def test_rate_panels_have_per_second_units() -> None:
    for panel in PANELS:
        exprs = _exprs(panel)
        if all(e.startswith(("sum(rate(", "sum by")) and "rate(" in e for e in exprs):
            assert _unit(panel) in PER_SECOND, panel["title"]
        if any("histogram_quantile" in e for e in exprs):
            assert _unit(panel) == "s", panel["title"]


def test_bytes_have_a_panel_of_their_own() -> None:
    """Bytes/s and counts/s on one axis flatten the counts to zero."""
    with_bytes = [p for p in PANELS if any("bytes" in e for e in _exprs(p))]
    assert with_bytes
    for panel in with_bytes:
        assert all("bytes" in e for e in _exprs(panel)), panel["title"]
        assert _unit(panel) in {"Bps", "binBps"}


def test_http_publish_panel_counts_only_http_requests() -> None:
    [panel] = [p for p in PANELS if "HTTP" in p["title"]]
    assert [re.findall(r"gamesync_\w+", e) for e in _exprs(panel)] == [
        ["gamesync_http_publishes_total"]
    ]


def test_games_with_subscribers_is_shown_as_a_bound() -> None:
    """Per-pod counts cannot be summed into a fleet count: show the largest pod and the sum."""
    [panel] = [p for p in PANELS if p["title"] == "Games with subscribers"]
    assert sorted(e.split("(")[0] for e in _exprs(panel)) == ["max", "sum"]
    assert "between" in panel["description"]


def test_panels_have_unique_ids_and_do_not_overlap() -> None:
    assert len({p["id"] for p in PANELS}) == len(PANELS)
    cells: dict[tuple[int, int], str] = {}
    for panel in PANELS:
        grid = panel["gridPos"]
        assert grid["x"] + grid["w"] <= 24, panel["title"]
        for x in range(grid["x"], grid["x"] + grid["w"]):
            for y in range(grid["y"], grid["y"] + grid["h"]):
                assert (x, y) not in cells, f"{panel['title']} covers {cells.get((x, y))}"
                cells[(x, y)] = panel["title"]
