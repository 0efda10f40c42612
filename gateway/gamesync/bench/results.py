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
    "median",
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
