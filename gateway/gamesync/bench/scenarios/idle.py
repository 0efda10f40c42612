"""``idle``: memory per idle connection, measured as the RSS slope between two halves."""

from __future__ import annotations

import asyncio
import math
import time
from typing import Any

from gamesync.bench.accounting import INVARIANTS, counts, merge_counts
from gamesync.bench.results import Target
from gamesync.bench.rig import Rig, admission_limits
from gamesync.bench.scenarios.contract import Context, Measurement, Scenario
from gamesync.bench.scenarios.steps import MIB, connect, med, pct

__all__ = ["SCENARIO"]

# One process can hold at most the fd hard limit (20000 here) of sockets; above this many
# connections per gateway process the idle scenario spreads them over several gateways.
PER_GATEWAY_IDLE = 15000


async def run(ctx: Context) -> Measurement:
    """Each N of ``connections`` opened in two halves and held; KiB of server RSS each."""
    opts = ctx.opts
    systems = opts.systems or ["gamesync"]
    rows: list[dict[str, Any]] = []
    creds = ctx.credentials(max(opts.connections))
    for n in opts.connections:
        nservers = max(1, math.ceil(n / PER_GATEWAY_IDLE))
        for system in systems:
            for r in range(opts.runs):
                async with Rig(opts.workdir, creds) as rig:
                    servers = [
                        await (
                            rig.gateway(paced=False) if system == "gamesync" else rig.raw(opts.size)
                        )
                        for _ in range(nservers)
                    ]
                    # Pacing lifted (UNPACED): else most of each half is turned away with 1013.
                    limits = [await admission_limits(s) for s in servers if s.internal_port]
                    warm = await rig.clients(system, servers, 20, opts.games)
                    await warm.connect(30)
                    for p in warm.procs:
                        await rig.stop(p)
                    await asyncio.sleep(1.0)  # let the servers notice the closed warm-up sockets
                    base = sum(s.proc.rss() for s in servers)
                    # Two halves: the slope between them is the cost of a connection, free of
                    # the heap space a fresh process has left over from start-up.
                    half = n // 2
                    games = max(1, n // 4)
                    first = await rig.clients(system, servers, half, games)
                    c1 = await connect(ctx, first, f"{system}: opening {half} idle")
                    await asyncio.sleep(opts.settle)
                    mid = sum(s.proc.rss() for s in servers)
                    second = await rig.clients(system, servers, n - half, games, offset=half)
                    c2 = await connect(ctx, second, f"{system}: opening {n - half} more")
                    await asyncio.sleep(opts.settle)  # 3 s by default, as in the probe's method
                    after = sum(s.proc.rss() for s in servers)
                    # What holding them costs: the servers' CPU over the hold (a hold of a ping
                    # interval or more, 20 s by default, includes every connection's ping).
                    cpu0, t0 = sum(s.proc.cpu() for s in servers), time.monotonic()
                    await asyncio.sleep(opts.hold)
                    hold_cpu = sum(s.proc.cpu() for s in servers) - cpu0
                    hold_secs = time.monotonic() - t0
                    held_rss = sum(s.proc.rss() for s in servers)
                    rep1, _ = await first.report({})
                    rep2, _ = await second.report({})
                    held = rep1["open"] + rep2["open"]
                    closed = merge_counts(rep1["closed"], rep2["closed"])
                    connected = c1["connected"] + c2["connected"]
                    conn = {
                        "connected": connected,
                        "failed": c1["failed"] + c2["failed"],
                        "secs": c1["secs"] + c2["secs"],
                    }
                    per = (after - mid) / max(1, c2["connected"]) / 1024
                    per_from_base = (after - base) / max(1, connected) / 1024
                    row = {
                        "system": system,
                        "connections": n,
                        "run": r + 1,
                        "servers": nservers,
                        "admission_rate": min((p["admission_rate"] for p in limits), default=None),
                        "connected": conn["connected"],
                        "failed": conn["failed"],
                        "held": held,
                        "connect_secs": round(conn["secs"], 2),
                        "accept_rate": round(conn["connected"] / max(1e-6, conn["secs"]), 1),
                        "rss_base_mib": round(base / MIB, 1),
                        "rss_mib": round(after / MIB, 1),
                        "rss_after_hold_mib": round(held_rss / MIB, 1),
                        "rss_half_mib": round(mid / MIB, 1),
                        "kib_per_conn": round(per, 2),
                        "kib_per_conn_from_base": round(per_from_base, 2),
                        "hold_cpu_pct": pct(hold_cpu, hold_secs),
                        # server CPU per held connection per second (SCALING's c_conn)
                        "us_per_conn_s": round(1e6 * hold_cpu / hold_secs / max(1, held), 2),
                        # Nothing is published: only duplicates or reordering could show.
                        **counts(rep1, rep2, keys=INVARIANTS),
                        "closed": closed,
                    }
                    rows.append(row)
                    ctx.display.note(
                        f"idle {system} N={n} run {r + 1}: {per:.1f} KiB/conn, held {held}"
                    )
    summary: dict[str, Any] = {}
    targets: list[Target] = []
    for n in opts.connections:
        for system in systems:
            mine = [r for r in rows if r["connections"] == n and r["system"] == system]
            kib = med(mine, "kib_per_conn")
            held = min(r["held"] for r in mine)
            summary[f"{system}:{n}"] = {
                "kib_per_conn": kib,
                "held_min": held,
                "rss_mib": med(mine, "rss_mib"),
                "us_per_conn_s": med(mine, "us_per_conn_s"),
            }
            if system == "gamesync":
                targets.append(
                    Target(
                        f"idle N={n}",
                        "≤ 14 KiB per connection (issue 14; issue 8 asked ≤ 16 KB)",
                        f"{kib:.2f} KiB/conn",
                        kib <= 14.0,
                    )
                )
                targets.append(
                    Target(f"idle N={n} held", f"{n} connections held", f"{held} held", held >= n)
                )
    params = {
        "connections": opts.connections,
        "runs": opts.runs,
        "systems": systems,
        "per_gateway_max": PER_GATEWAY_IDLE,
    }
    return Measurement(params, rows, summary, targets)


SCENARIO = Scenario(
    name="idle",
    run=run,
    defaults={"connections": [5000, 20000], "runs": 3, "games": 1},
    columns=(
        "system",
        "connections",
        "run",
        "servers",
        "connected",
        "held",
        "rss_base_mib",
        "rss_half_mib",
        "rss_mib",
        "kib_per_conn",
        "kib_per_conn_from_base",
        "hold_cpu_pct",
        "us_per_conn_s",
        "accept_rate",
    ),
)
