"""Benchmark results: latency summaries, medians over runs, targets, and the JSON file.

Result file schema (``schema: 1``)::

    {"schema": 1, "scenario": "fanout", "started": ISO-8601, "machine": {...},
     "params": {...}, "runs": [{"system": ..., ...per-run metrics...}, ...],
     "summary": {...medians and ratios...},
     "targets": [{"name": ..., "target": ..., "value": ..., "met": bool}],
     "invariants": {"lost": 0, "duplicates": 0, "out_of_order": 0},
     "plots": ["...png"]}
"""

from __future__ import annotations

import json
import os
import platform
import statistics
import sys
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np

__all__ = [
    "SCHEMA",
    "Target",
    "cdf_points",
    "latency_summary",
    "machine_info",
    "markdown",
    "median",
    "now_stamp",
    "write_result",
]

SCHEMA = 1
REQUIRED_KEYS = (
    "schema",
    "scenario",
    "started",
    "machine",
    "params",
    "runs",
    "summary",
    "targets",
    "invariants",
    "plots",
)


@dataclass
class Target:
    """One target of issue 8 (or 2/3) with the measured value and whether it was met."""

    name: str
    target: str
    value: str
    met: bool


def latency_summary(samples_ms: np.ndarray) -> dict[str, float]:
    """p50/p90/p99/p99.9/max/mean of latency samples in milliseconds (zeros when empty)."""
    if samples_ms.size == 0:
        return {
            "count": 0,
            "p50": 0.0,
            "p90": 0.0,
            "p99": 0.0,
            "p999": 0.0,
            "max": 0.0,
            "mean": 0.0,
        }
    q = np.percentile(samples_ms, [50, 90, 99, 99.9])
    return {
        "count": int(samples_ms.size),
        "p50": round(float(q[0]), 3),
        "p90": round(float(q[1]), 3),
        "p99": round(float(q[2]), 3),
        "p999": round(float(q[3]), 3),
        "max": round(float(samples_ms.max()), 3),
        "mean": round(float(samples_ms.mean()), 3),
    }


def cdf_points(samples_ms: np.ndarray, n: int = 300) -> list[list[float]]:
    """A down-sampled CDF: [latency ms, fraction] pairs, dense in the tail."""
    if samples_ms.size == 0:
        return []
    fractions = 1 - np.logspace(0, -4, n)  # 0 .. 0.9999
    fractions = np.append(fractions, 1.0)
    values = np.quantile(samples_ms, fractions)
    return [
        [round(float(v), 4), round(float(f), 6)] for v, f in zip(values, fractions, strict=True)
    ]


def median(values: list[float]) -> float:
    return float(statistics.median(values)) if values else 0.0


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def _mem_total_gib() -> float:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return round(int(line.split()[1]) / 1024 / 1024, 1)
    except OSError:
        pass
    return 0.0


def _gateway_source() -> str:
    from gamesync.bench.procs import GATEWAY_SOURCE

    src = GATEWAY_SOURCE["path"]
    if not src:
        return "installed package"
    stamp = Path(src) / "COMMIT"
    return f"{src} (commit {stamp.read_text().strip()})" if stamp.exists() else src


def _pinned() -> bool:
    from gamesync.bench.procs import server_cpus

    return server_cpus() is not None


def machine_info() -> dict[str, Any]:
    versions: dict[str, str | None] = {}
    for dist in (
        "gamesync",
        "websockets",
        "uvicorn",
        "starlette",
        "uvloop",
        "redis",
        "python-socketio",
        "python-engineio",
    ):
        try:
            versions[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            versions[dist] = None
    return {
        "cpu": _cpu_model(),
        "cores": os.cpu_count(),
        "mem_gib": _mem_total_gib(),
        "kernel": platform.release(),
        "python": sys.version.split()[0],
        "loadavg_at_start": [round(x, 2) for x in os.getloadavg()],
        "pinned": _pinned(),
        "gateway_source": _gateway_source(),
        "packages": versions,
    }


def write_result(results_dir: Path, payload: dict[str, Any]) -> Path:
    """Write ``payload`` (already holding every REQUIRED_KEYS entry) as pretty JSON."""
    missing = [k for k in REQUIRED_KEYS if k not in payload]
    if missing:
        raise ValueError(f"result misses {missing}")
    results_dir.mkdir(parents=True, exist_ok=True)
    path = results_dir / f"{payload['scenario']}-{payload['stamp']}.json"
    path.write_text(json.dumps(payload, indent=2, default=_default) + "\n")
    return path


def _default(obj: object) -> object:
    if isinstance(obj, Target):
        return asdict(obj)
    if isinstance(obj, Path):
        return str(obj)
    if isinstance(obj, np.integer | np.floating):
        return obj.item()
    raise TypeError(f"cannot serialise {type(obj).__name__}")


def now_stamp() -> tuple[str, str]:
    """(ISO time, file-name stamp) in UTC."""
    now = datetime.now(UTC)
    return now.isoformat(timespec="seconds"), now.strftime("%Y%m%dT%H%M%SZ")


def _cell(row: dict[str, Any], col: str) -> str:
    value: Any = row
    for part in col.split("."):
        value = value.get(part) if isinstance(value, dict) else None
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:,.2f}" if abs(value) < 100 else f"{value:,.0f}"
    if isinstance(value, int):
        return f"{value:,}"
    return str(value)


def markdown(payload: dict[str, Any], columns: Sequence[str]) -> str:
    """A Markdown digest of one result: targets, then one row per run with ``columns``."""
    lines = [f"### `{payload['scenario']}` — {payload['started']}", ""]
    lines += ["| target | wanted | measured | met |", "|---|---|---|---|"]
    for t in payload["targets"]:
        t = t if isinstance(t, dict) else asdict(t)
        lines.append(
            f"| {t['name']} | {t['target']} | {t['value']} | "
            f"{'met' if t['met'] else '**missed**'} |"
        )
    cols = list(columns)
    lines += [
        "",
        "| "
        + " | ".join(c.replace("latency_ms.", "").replace("staleness_ms.", "stale ") for c in cols)
        + " |",
        "|" + "---|" * len(cols),
    ]
    for row in payload["runs"]:
        lines.append("| " + " | ".join(_cell(row, c) for c in cols) + " |")
    lines.append("")
    return "\n".join(lines)
