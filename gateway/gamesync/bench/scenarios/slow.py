"""``slow``: one client that stops reading, and what it does to everyone else.

Each run pairs a baseline window (the extra client reads) with a slow one (it stops reading):
the others' p99 and the gateway's RSS must not move, and the reader that stopped is closed 1013.
"""

from __future__ import annotations

from typing import Any

from gamesync.bench.results import Target, median
from gamesync.bench.scenarios import push
from gamesync.bench.scenarios.contract import Context, Measurement, Scenario
from gamesync.bench.scenarios.steps import med_latency

__all__ = ["SCENARIO"]


async def run(ctx: Context) -> Measurement:
    """``runs`` pairs of a baseline window and a window with a reader that stopped."""
    opts = ctx.opts
    slow_games = list(range(1, min(opts.slow_games, opts.games) + 1))
    multi = {opts.clients: slow_games}
    rows: list[dict[str, Any]] = []
    series: dict[str, Any] = {}
    for r in range(opts.runs):
        for variant, is_slow in (("baseline", False), ("slow", True)):
            got, s = await push.run_system(
                ctx,
                "gamesync",
                broker="memory",
                nservers=1,
                runs=1,
                label=f"{variant}",
                multi=multi,
                slow=is_slow,
            )
            for row in got:
                row["variant"] = variant
                row["run"] = r + 1
            rows += got
            for k, v in s.items():
                series[
                    k.replace(":run1", f":run{r + 1}") if k.startswith("rss") else f"{k}:run{r + 1}"
                ] = v
    base = [r for r in rows if r["variant"] == "baseline"]
    slowr = [r for r in rows if r["variant"] == "slow"]
    p99_base = med_latency(base)["p99"]
    p99_slow = med_latency(slowr)["p99"]
    ratio = p99_slow / max(1e-6, p99_base)
    growth = []
    for r in range(1, opts.runs + 1):
        pts = series.get(f"rss:slow:run{r}", [])
        if pts:
            start = pts[0][1]
            growth.append(max(p[1] for p in pts) - start)
    rss_growth = median(growth)
    base_growth = []
    for r in range(1, opts.runs + 1):
        pts = series.get(f"rss:baseline:run{r}", [])
        if pts:
            base_growth.append(max(p[1] for p in pts) - pts[0][1])
    slow_closes = [r.get("slow_server_close_code") for r in slowr]
    summary = {
        "baseline_latency_ms": med_latency(base),
        "slow_latency_ms": med_latency(slowr),
        "p99_ratio": round(ratio, 3),
        "rss_growth_mib": round(rss_growth, 1),
        "baseline_rss_growth_mib": round(median(base_growth), 1),
        "slow_client_close_codes": slow_closes,
    }
    flat = rss_growth <= max(8.0, 1.5 * median(base_growth) + 4.0)
    targets = [
        Target(
            "slow: others' p99",
            "within 1.2x of the run without a slow client",
            f"{ratio:.2f}x ({p99_slow:.2f} vs {p99_base:.2f} ms)",
            ratio <= 1.2,
        ),
        Target(
            "slow: gateway RSS flat",
            "RSS growth ~ baseline (≤ max(8 MiB, 1.5xbase+4))",
            f"+{rss_growth:.1f} MiB (baseline +{median(base_growth):.1f} MiB)",
            flat,
        ),
        Target(
            "slow: the reader that stopped is closed",
            "1013 (DESIGN §2)",
            ", ".join(str(c) for c in slow_closes),
            bool(slow_closes) and all(c == 1013 for c in slow_closes),
        ),
    ]
    params = {**push.params(opts), "servers": 1, "broker": "memory", "slow_games": len(slow_games)}
    return Measurement(params, rows, summary, targets, series)


SCENARIO = Scenario(
    name="slow",
    run=run,
    defaults={"clients": 1000, "games": 100, "rate": 1000.0, "seconds": 30.0, "runs": 3},
    columns=(
        "variant",
        *push.COLUMNS[1:],
        "slow_close_code",
        "slow_server_close_code",
        "slow_delivered",
        "slow_skipped",
    ),
)
