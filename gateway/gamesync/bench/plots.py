"""One PNG per benchmark run: throughput bars, latency CDF and RSS over time, as available."""

from __future__ import annotations

from pathlib import Path
from typing import Any

__all__ = ["plot_result"]


def plot_result(payload: dict[str, Any], series: dict[str, Any], path: Path) -> Path | None:
    """Draw the panels this scenario has data for into ``path``; None when there is nothing."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    runs: list[dict[str, Any]] = payload["runs"]
    panels = []
    if any("deliveries_per_s" in r for r in runs):
        panels.append("throughput")
    if any("server_us_per_publish" in r for r in runs):
        panels += ["steps", "cost"]
    if any("kib_per_conn" in r for r in runs):
        panels.append("idle")
    if any("bytes_per_player_min" in r for r in runs):
        panels.append("polling")
    if any("kib_per_player_minute" in r for r in runs):
        panels.append("wire")
    if any(r.get("part") == "cpu" for r in runs):
        panels.append("delta_cpu")
    if any(k.startswith("cdf:") and v for k, v in series.items()):
        panels.append("cdf")
    if any(k.startswith("rss:") and v for k, v in series.items()):
        panels.append("rss")
    if not panels:
        return None
    fig, axes = plt.subplots(1, len(panels), figsize=(5.5 * len(panels), 4.2), squeeze=False)
    for ax, panel in zip(axes[0], panels, strict=True):
        if panel == "throughput":
            _bars(ax, runs, "deliveries_per_s", "connections", "deliveries/s (median)")
        elif panel == "steps":
            _steps(ax, runs)
        elif panel == "cost":
            _cost(ax, runs)
        elif panel == "idle":
            _bars(ax, runs, "kib_per_conn", "connections", "KiB per idle connection (median)")
            ax.axhline(14, color="red", linestyle="--", linewidth=1, label="14 KiB target")
            ax.legend(fontsize=8)
        elif panel == "polling":
            _bars(ax, runs, "bytes_per_player_min", "players", "bytes per player-minute (median)")
        elif panel == "wire":
            _wire(ax, runs)
        elif panel == "delta_cpu":
            _delta_cpu(ax, runs)
        elif panel == "cdf":
            for key, points in sorted(series.items()):
                if key.startswith("cdf:") and points:
                    xs = [max(p[0], 1e-3) for p in points]
                    ys = [p[1] for p in points]
                    ax.plot(xs, ys, label=key[4:])
            ax.set_xscale("log")
            ax.set_xlabel("publish → client latency (ms, log)")
            ax.set_ylabel("fraction of deliveries")
            ax.set_title("latency CDF")
            ax.grid(True, which="both", alpha=0.3)
            ax.legend(fontsize=8)
        elif panel == "rss":
            for key, points in sorted(series.items()):
                if key.startswith("rss:") and points:
                    ax.plot([p[0] for p in points], [p[1] for p in points], label=key[4:])
            ax.set_xlabel("seconds since publishing started")
            ax.set_ylabel("server RSS (MiB)")
            ax.set_title("server RSS over time")
            ax.grid(True, alpha=0.3)
            ax.legend(fontsize=7)
    fig.suptitle(f"gamesync bench {payload['scenario']} — {payload['started']}", fontsize=10)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def _bars(ax: Any, runs: list[dict[str, Any]], metric: str, group_key: str, title: str) -> None:
    import statistics

    groups = sorted({r.get(group_key, 0) for r in runs})
    systems = sorted({r["system"] for r in runs})
    width = 0.8 / max(1, len(systems))
    for i, system in enumerate(systems):
        values = []
        for g in groups:
            vals = [r[metric] for r in runs if r["system"] == system and r.get(group_key, 0) == g]
            values.append(statistics.median(vals) if vals else 0)
        xs = [j + i * width for j in range(len(groups))]
        bars = ax.bar(xs, values, width, label=system)
        ax.bar_label(bars, fmt="%.0f" if max(values or [0]) > 100 else "%.1f", fontsize=7)
    ax.set_xticks([j + width * (len(systems) - 1) / 2 for j in range(len(groups))])
    ax.set_xticklabels([f"{group_key}={g}" for g in groups])
    ax.set_title(title)
    ax.legend(fontsize=8)


def _steps(ax: Any, runs: list[dict[str, Any]]) -> None:
    """``throughput``: each window's p99 against its publish rate, passes and failures."""
    for i, system in enumerate(sorted({r["system"] for r in runs})):
        for passed, marker in ((True, "o"), (False, "x")):
            mine = [r for r in runs if r["system"] == system and r["passed"] is passed]
            ax.scatter(
                [r["rate"] for r in mine],
                [max(r["latency_ms"]["p99"], 0.01) for r in mine],
                marker=marker,
                color=f"C{i}",
                label=f"{system} {'passed' if passed else 'failed'}",
            )
    ax.axhline(50, color="red", linestyle="--", linewidth=1, label="p99 limit")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("publishes/s (log)")
    ax.set_ylabel("p99 publish → client (ms, log)")
    ax.set_title("throughput steps")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=7)


def _cost(ax: Any, runs: list[dict[str, Any]]) -> None:
    """``throughput``: server CPU per publish against the publish rate (passing windows)."""
    for i, system in enumerate(sorted({r["system"] for r in runs})):
        mine = sorted(
            (r["rate"], r["server_us_per_publish"])
            for r in runs
            if r["system"] == system and r["passed"] and r["server_us_per_publish"]
        )
        ax.scatter([m[0] for m in mine], [m[1] for m in mine], color=f"C{i}", label=system)
    ax.set_xscale("log")
    ax.set_xlabel("publishes/s (log)")
    ax.set_ylabel("server CPU per publish (µs)")
    ax.set_ylim(bottom=0)
    ax.set_title("server cost per publish (passing windows)")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=7)


def _wire(ax: Any, runs: list[dict[str, Any]]) -> None:
    """``bandwidth``: KiB on the wire per player-minute, by stream and mode (log scale)."""
    rows = [r for r in runs if r.get("part") == "wire"]
    streams = sorted({r["stream"] for r in rows})
    modes = ["full", "delta", "poll"]
    width = 0.8 / len(modes)
    for i, mode in enumerate(modes):
        values = [
            next(
                (r["kib_per_player_minute"] for r in rows if r["stream"] == s and r["mode"] == m), 0
            )
            for s in streams
            for m in (mode,)
        ]
        bars = ax.bar([j + i * width for j in range(len(streams))], values, width, label=mode)
        ax.bar_label(bars, fmt="%.1f", fontsize=7)
    ax.set_xticks([j + width for j in range(len(streams))])
    ax.set_xticklabels(streams)
    ax.set_yscale("log")
    ax.set_ylabel("KiB per player-minute (log)")
    ax.set_title("bytes on the wire: full, delta, 3-s ETag polling")
    ax.legend(fontsize=8)


def _delta_cpu(ax: Any, runs: list[dict[str, Any]]) -> None:
    """``bandwidth``: the gateway's CPU per delivered update in each run, full and delta."""
    rows = [r for r in runs if r.get("part") == "cpu"]
    for i, mode in enumerate(("full", "delta")):
        mine = sorted((r["run"], r["cpu_us_per_delivery"]) for r in rows if r["mode"] == mode)
        ax.plot([m[0] for m in mine], [m[1] for m in mine], marker="o", color=f"C{i}", label=mode)
    clients = sorted({r["clients"] for r in rows})
    ax.set_xticks(sorted({r["run"] for r in rows}))
    ax.set_xlabel("run")
    ax.set_ylabel("gateway CPU per delivery (µs)")
    ax.set_ylim(bottom=0)
    ax.set_title(f"CPU per delivered update, {', '.join(map(str, clients))} subscribers")
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=8)
