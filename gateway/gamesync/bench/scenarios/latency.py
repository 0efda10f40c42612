"""``latency``: publish → client latency through Redis at a fixed rate, over N gateways."""

from __future__ import annotations

from gamesync.bench.results import Target
from gamesync.bench.scenarios import push
from gamesync.bench.scenarios.contract import Context, Measurement, Scenario
from gamesync.bench.scenarios.steps import med, med_latency

__all__ = ["SCENARIO"]


async def run(ctx: Context) -> Measurement:
    """GameSync over Redis on ``gateways`` processes; targets p99 ≤ 10 ms, p99.9 ≤ 50 ms, 0 lost."""
    opts = ctx.opts
    rows, series = await push.run_system(
        ctx, "gamesync", broker="redis", nservers=opts.gateways, runs=opts.runs, label="gamesync"
    )
    lat = med_latency(rows)
    dps = opts.rate * max(1, opts.clients // max(1, opts.games))
    lost = sum(r["lost"] + r["skipped"] for r in rows)
    summary = {
        "latency_ms": lat,
        "server_cpu_pct": med(rows, "server_cpu_pct"),
        "redis_cpu_pct": med(rows, "redis_cpu_pct"),
        "client_cpu_pct": med(rows, "client_cpu_pct"),
        "deliveries_per_s": dps,
        "deliveries_per_cpu_s": med(rows, "deliveries_per_cpu_s"),
    }
    where = f"{opts.clients} clients / {dps:,.0f} deliveries/s"
    targets = [
        Target(f"latency p99 ({where})", "≤ 10 ms", f"{lat['p99']:.2f} ms", lat["p99"] <= 10),
        Target(f"latency p99.9 ({where})", "≤ 50 ms", f"{lat['p999']:.2f} ms", lat["p999"] <= 50),
        Target("latency lost", "0 lost (and nothing skipped)", str(lost), lost == 0),
    ]
    return Measurement(push.params(opts), rows, summary, targets, series)


SCENARIO = Scenario(
    name="latency",
    run=run,
    defaults={
        "clients": 5000,
        "games": 1250,
        "rate": 2000.0,
        "seconds": 20.0,
        "gateways": 2,
        "runs": 3,
    },
    columns=push.COLUMNS,
)
