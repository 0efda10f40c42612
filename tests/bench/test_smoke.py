"""Smoke tests of `gamesync bench`: every scenario at a tiny size, checked for shape, not speed.

Each test runs the real command (servers, load clients and publisher as separate processes on
loopback) for a few seconds and checks the JSON result: the schema, the 0 lost / 0 duplicate /
0 out-of-order invariants, and that the connections it asked for were made.
"""

from __future__ import annotations

import importlib.util
import json
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from gamesync.bench.scenarios.bandwidth import CPU_VERSIONS

REQUIRED = (
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
TARGET_KEYS = {"name", "target", "value", "met"}

needs_redis = pytest.mark.skipif(
    shutil.which("redis-server") is None, reason="needs the redis-server binary"
)
needs_socketio = pytest.mark.skipif(
    importlib.util.find_spec("socketio") is None, reason="needs the optional python-socketio extra"
)


def run_bench(tmp_path: Path, *args: str, timeout: float = 50) -> dict[str, Any]:
    """Run `gamesync bench ARGS` in a child process and load the JSON result it names."""
    proc = subprocess.run(
        [sys.executable, "-m", "gamesync.bench.cli", *args, "--results", str(tmp_path), "--quiet"],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    assert proc.returncode == 0, f"bench failed:\n{proc.stdout}\n{proc.stderr}\n{_logs(tmp_path)}"
    result_path = Path(proc.stdout.strip().splitlines()[-1])
    result: dict[str, Any] = json.loads(result_path.read_text())
    return result


def _logs(tmp_path: Path) -> str:
    tails = []
    for log in sorted(tmp_path.glob("*/logs/*.log")):
        tails.append(f"--- {log.name}\n" + "\n".join(log.read_text().splitlines()[-15:]))
    return "\n".join(tails)


def check_shape(result: dict[str, Any], scenario: str) -> None:
    for key in REQUIRED:
        assert key in result, f"result has no {key!r}"
    assert result["schema"] == 1
    assert result["scenario"] == scenario
    assert result["machine"]["cores"] >= 1
    assert result["runs"], "no runs recorded"
    for target in result["targets"]:
        assert set(target) == TARGET_KEYS
        assert isinstance(target["met"], bool)


def check_invariants(result: dict[str, Any]) -> None:
    assert result["invariants"] == {"lost": 0, "duplicates": 0, "out_of_order": 0}
    for row in result["runs"]:
        assert (row["lost"], row["duplicates"], row["out_of_order"]) == (0, 0, 0), row


def test_fanout_delivers_every_snapshot_to_every_connection_on_both_servers(tmp_path: Path) -> None:
    result = run_bench(
        tmp_path, "fanout", "--connections", "40", "--deliveries", "2000", "--runs", "1"
    )
    check_shape(result, "fanout")
    check_invariants(result)
    assert {r["system"] for r in result["runs"]} == {"raw", "floor", "gamesync"}
    for row in result["runs"]:
        assert row["connected"] == 40
        assert row["delivered"] == row["expected"] == 40 * 50
        assert row["deliveries_per_s"] > 0
        assert row["deliveries_per_cpu_s"] >= 0
    assert {"ratio_raw", "ratio_floor"} <= set(result["summary"]["40"])
    assert [t["name"] for t in result["targets"]] == [
        "fanout N=40 vs broadcast()",
        "fanout N=40 vs broadcast(), per server CPU-second",
        "fanout N=40 vs the bare floor",
        "fanout N=40 vs the bare floor, per server CPU-second",
    ]
    assert all(Path(p).is_file() for p in result["plots"])
    assert result["plots"]


@needs_redis
@pytest.mark.redis
def test_latency_through_redis_loses_nothing_and_reports_percentiles(tmp_path: Path) -> None:
    result = run_bench(
        tmp_path,
        "latency",
        "--clients",
        "40",
        "--games",
        "10",
        "--rate",
        "50",
        "--seconds",
        "2",
        "--gateways",
        "2",
        "--runs",
        "1",
        "--no-plot",
    )
    check_shape(result, "latency")
    check_invariants(result)
    row = result["runs"][0]
    assert row["connected"] == 40
    assert row["skipped"] == 0
    assert row["delivered"] == row["expected"] == 100 * 4
    assert set(row["latency_ms"]) >= {"p50", "p90", "p99", "p999", "max"}
    assert len(row["server_cpu_pct_each"]) == 2
    assert result["series"]["cdf:gamesync"]


@needs_redis
@needs_socketio
@pytest.mark.redis
def test_peer_runs_the_same_workload_against_python_socketio(tmp_path: Path) -> None:
    result = run_bench(
        tmp_path,
        "peer",
        "--clients",
        "30",
        "--games",
        "10",
        "--rate",
        "40",
        "--seconds",
        "1",
        "--gateways",
        "1",
        "--runs",
        "1",
        "--no-plot",
    )
    check_shape(result, "peer")
    check_invariants(result)
    assert {r["system"] for r in result["runs"]} == {"gamesync", "socketio"}
    for row in result["runs"]:
        assert row["delivered"] == row["expected"] == 40 * 3
    assert "ratio_p99" in result["summary"]


@needs_redis
@pytest.mark.redis
def test_throughput_steps_both_systems_up_and_loses_nothing_it_passes(tmp_path: Path) -> None:
    result = run_bench(
        tmp_path,
        "throughput",
        "--clients",
        "40",
        "--games",
        "10",
        "--rate",
        "40",
        "--max-rate",
        "70",
        "--seconds",
        "1",
        "--runs",
        "1",
        "--no-plot",
        timeout=90,
    )
    check_shape(result, "throughput")
    check_invariants(result)
    assert {r["system"] for r in result["runs"]} == {"gamesync", "floor"}
    for row in result["runs"]:
        assert row["connected"] == 40
        assert row["rate"] <= 70  # --max-rate caps the climb
        if row["passed"]:  # every passing window delivered every version to every watcher
            assert row["delivered"] == row["expected"] == row["published"] * 4
            assert row["skipped"] == 0
        # None where the window's server CPU was below the clock's resolution (a small smoke run)
        assert row["server_us_per_publish"] is None or row["server_us_per_publish"] > 0
        assert row["redis_us_per_publish"] >= 0
    for system in ("gamesync", "floor"):
        summary = result["summary"][system]
        assert summary["max_rate"] > 0, f"{system} passed no window"
        assert len(summary["max_rate_runs"]) == 1
    assert "ratio" in result["summary"]
    names = [t["name"] for t in result["targets"]]
    assert names == [
        "throughput, GameSync / bare-subscriber floor",
        "throughput per server CPU-second, GameSync / floor",
        "throughput: passing windows lose nothing",
    ]
    # 0.0 when no rate had a measurable CPU figure for both (this small run's floor often has
    # none); the ratio itself is unit-tested in test_throughput.py
    measured = [r for r in result["runs"] if r["passed"] and r["server_us_per_publish"]]
    at = {
        s: {(r["run"], r["rate"]) for r in measured if r["system"] == s}
        for s in ("gamesync", "floor")
    }
    assert (result["summary"]["cpu_ratio"] > 0) == bool(at["gamesync"] & at["floor"])


def test_polling_compares_etag_polling_with_push(tmp_path: Path) -> None:
    result = run_bench(
        tmp_path,
        "polling",
        "--players",
        "20",
        "--games",
        "5",
        "--seconds",
        "2",
        "--update-interval",
        "1",
        "--poll-interval",
        "1",
        "--no-plot",
    )
    check_shape(result, "polling")
    check_invariants(result)
    rows = {r["system"]: r for r in result["runs"]}
    assert rows["push"]["delivered"] == rows["push"]["expected"]
    assert rows["poll"]["requests_per_player_min"] > 0
    assert rows["push"]["requests_per_player_min"] == 0


def test_idle_holds_connections_and_reports_memory_per_connection(tmp_path: Path) -> None:
    result = run_bench(
        tmp_path,
        "idle",
        "--connections",
        "60",
        "--runs",
        "1",
        "--hold",
        "0.2",
        "--settle",
        "0.5",
        "--no-plot",
    )
    check_shape(result, "idle")
    check_invariants(result)
    row = result["runs"][0]
    assert row["connected"] == row["held"] == 60
    assert row["kib_per_conn"] > 0
    assert row["admission_rate"] >= 1e6  # a crowd above the pacing's burst is not turned away
    # what holding them cost: the servers' CPU over the hold (10 ms ticks: may read 0 here)
    assert row["hold_cpu_pct"] >= 0
    assert row["us_per_conn_s"] >= 0
    assert result["summary"]["gamesync:60"]["us_per_conn_s"] == row["us_per_conn_s"]


@needs_redis
def test_storm_admits_every_client_cold_hot_and_bare(tmp_path: Path) -> None:
    result = run_bench(
        tmp_path,
        "storm",
        "--clients",
        "600",
        "--games",
        "150",
        "--runs",
        "1",
        "--no-plot",
        timeout=90,
    )
    check_shape(result, "storm")
    rows = {(r["system"], r["phase"]): r for r in result["runs"]}
    assert set(rows) == {("gamesync", "cold"), ("gamesync", "hot"), ("websockets", "handshake")}
    for row in rows.values():
        assert (row["connected"], row["failed"]) == (600, 0), row
        assert row["admissions_per_s"] > 0
        assert row["admissions_per_cpu_s"] > 0
    assert result["summary"]["hot_admissions_per_cpu_s_ratio"] > 0
    admitted = [t for t in result["targets"] if t["name"].endswith("admitted")]
    assert admitted
    assert admitted[0]["met"]


def test_slow_client_run_has_a_baseline_and_keeps_others_whole(tmp_path: Path) -> None:
    result = run_bench(
        tmp_path,
        "slow",
        "--clients",
        "30",
        "--games",
        "10",
        "--rate",
        "50",
        "--seconds",
        "1",
        "--slow-games",
        "5",
        "--runs",
        "1",
        "--no-plot",
    )
    check_shape(result, "slow")
    check_invariants(result)
    variants = {r["variant"]: r for r in result["runs"]}
    assert set(variants) == {"baseline", "slow"}
    for row in variants.values():
        assert row["delivered"] == row["expected"] == 50 * 3
        assert len(row["slow"]) == 1
    assert result["series"]["rss:slow:run1"]


def test_bandwidth_compares_deltas_full_snapshots_and_polling(tmp_path: Path) -> None:
    result = run_bench(tmp_path, "bandwidth", "--runs", "1", "--clients", "8", "--no-plot")
    check_shape(result, "bandwidth")
    wire = {(r["stream"], r["mode"]): r for r in result["runs"] if r["part"] == "wire"}
    for stream in ("demo", "nommie8k"):
        full = wire[(stream, "full")]["kib_per_player_minute"]
        assert 0 < wire[(stream, "delta")]["kib_per_player_minute"] < full
        assert wire[(stream, "poll")]["up_per_message"] > 0  # a request for every poll
    cpu = [r for r in result["runs"] if r["part"] == "cpu"]
    assert {r["mode"] for r in cpu} == {"full", "delta"}
    assert all(r["deliveries"] == 8 * CPU_VERSIONS for r in cpu)
    delta_bytes = next(r["bytes_per_delivery"] for r in cpu if r["mode"] == "delta")
    full_bytes = next(r["bytes_per_delivery"] for r in cpu if r["mode"] == "full")
    assert delta_bytes * 4 < full_bytes
    formats = {r["stream"]: r for r in result["runs"] if r["part"] == "formats"}
    assert formats["nommie8k"]["full"]["bytes"] > 7000  # Nommie-sized, history included
    assert {"json_patch", "merge_patch", "fossil"} <= set(formats["demo"])


@needs_redis
@pytest.mark.redis
def test_affinity_puts_each_games_watchers_on_its_shard_and_loses_nothing(tmp_path: Path) -> None:
    result = run_bench(
        tmp_path,
        "affinity",
        "--clients",
        "32",
        "--games",
        "8",
        "--rate",
        "40",
        "--seconds",
        "2",
        "--gateways",
        "4",
        "--runs",
        "1",
        "--no-plot",
        timeout=120,
    )
    check_shape(result, "affinity")
    check_invariants(result)
    rows = {row["placement"]: row for row in result["runs"]}
    assert set(rows) == {"spread", "affine"}
    for row in rows.values():
        assert row["connected"] == 32
        assert row["delivered"] == row["expected"] == 80 * 4
        assert len(row["server_cpu_pct_each"]) == 4
    # 8 games, 4 watchers each: spread, each game on every gateway; affine, on its shard only
    assert rows["spread"]["games_held"] == 8 * 4
    assert rows["affine"]["games_held"] == 8
    # every gateway received every publish spread, its own games' only affine
    assert rows["spread"]["received_each"] == [80] * 4
    assert sum(rows["affine"]["received_each"]) == 80
    assert len(rows["affine"]["idle_cpu_pct_each"]) == 4
    assert set(result["summary"]["unit_costs"]) == {"us_per_received", "us_per_delivery"}
    assert result["params"]["loadavg_at_start"]
    assert "ratio_cpu_per_gateway" in result["summary"]
    # each gateway's broker receive time, read from its metrics: some for every gateway that
    # received envelopes, and spread (every publish on every gateway) spends more than affine
    for row in rows.values():
        assert len(row["broker_cpu_pct_each"]) == 4
    assert all(pct > 0 for pct in rows["spread"]["broker_cpu_pct_each"])
    assert rows["spread"]["broker_cpu_pct_mean"] > rows["affine"]["broker_cpu_pct_mean"] > 0
    assert "ratio_broker_cpu_per_gateway" in result["summary"]
    assert rows["spread"]["envelopes_per_read"] > 0.5  # probes and confirmations are reads too


@needs_redis
@pytest.mark.redis
def test_affinity_one_pod_runs_only_shard_0_with_its_own_clients(tmp_path: Path) -> None:
    result = run_bench(
        tmp_path,
        "affinity",
        "--one-pod",
        *("--clients", "32", "--games", "8", "--rate", "40", "--seconds", "2"),
        *("--gateways", "4", "--runs", "1", "--no-plot"),
        timeout=120,
    )
    check_shape(result, "affinity")
    check_invariants(result)
    assert result["params"]["one_pod"] is True
    rows = {row["placement"]: row for row in result["runs"]}
    for row in rows.values():
        assert row["connected"] == 8  # the quarter of the 32 clients that shard 0 gets
        assert len(row["server_cpu_pct_each"]) == 1
        assert row["delivered"] == row["expected"] == 80  # 8 clients, 10 versions of each game
    # spread: one watcher of each of the 8 games, so every publish; affine: its 2 games only
    assert rows["spread"]["games_held"] == 8
    assert rows["affine"]["games_held"] == 2
    assert rows["spread"]["received_each"] == [80]
    assert rows["affine"]["received_each"] == [20]
