"""``peer``: the ``latency`` workload against GameSync and python-socketio, one after the other.

python-socketio runs ``AsyncServer`` with ``AsyncRedisManager`` (a room per game) under uvicorn,
fed by a ``write_only`` emitter; both systems get the same clients, games, rate and servers.
"""

from __future__ import annotations

from typing import Any

from gamesync.bench.results import Target
from gamesync.bench.scenarios import push
from gamesync.bench.scenarios.contract import Context, Measurement, Scenario
from gamesync.bench.scenarios.steps import med, med_latency

__all__ = ["SCENARIO"]


async def run(ctx: Context) -> Measurement:
    """Each of ``systems`` (GameSync, python-socketio) in turn; ratios of CPU cost and p99."""
    opts = ctx.opts
    from gamesync.bench.peer import require_socketio

    require_socketio()
    systems = opts.systems or ["gamesync", "socketio"]
    rows: list[dict[str, Any]] = []
    series: dict[str, Any] = {}
    for system in systems:
        r, s = await push.run_system(
            ctx, system, broker="redis", nservers=opts.gateways, runs=opts.runs, label=system
        )
        rows += r
        series.update(s)
    summary: dict[str, Any] = {}
    for system in systems:
        mine = [r for r in rows if r["system"] == system]
        summary[system] = {
            "latency_ms": med_latency(mine),
            "deliveries_per_cpu_s": med(mine, "deliveries_per_cpu_s"),
            "server_cpu_pct": med(mine, "server_cpu_pct"),
            "server_rss_mib": med(mine, "server_rss_mib"),
        }
    targets = []
    if "gamesync" in summary and "socketio" in summary:
        gs, sio = summary["gamesync"], summary["socketio"]
        eff = gs["deliveries_per_cpu_s"] / max(1.0, sio["deliveries_per_cpu_s"])
        p99 = gs["latency_ms"]["p99"] / max(1e-6, sio["latency_ms"]["p99"])
        summary["ratio_deliveries_per_cpu_s"] = round(eff, 3)
        summary["ratio_p99"] = round(p99, 3)
        targets = [
            Target(
                "peer deliveries per CPU-s",
                "≥ 3x python-socketio",
                f"{eff:.2f}x ({gs['deliveries_per_cpu_s']:,.0f} vs "
                f"{sio['deliveries_per_cpu_s']:,.0f})",
                eff >= 3,
            ),
            Target(
                "peer p99",
                "≤ 1/3 of python-socketio's",
                f"{p99:.2f}x ({gs['latency_ms']['p99']:.2f} vs {sio['latency_ms']['p99']:.2f} ms)",
                p99 <= 1 / 3,
            ),
        ]
    return Measurement({**push.params(opts), "systems": systems}, rows, summary, targets, series)


SCENARIO = Scenario(
    name="peer",
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
