"""``fanout``: one game's snapshots to N sockets as fast as the server writes them.

GameSync (in-process broker, publishing over its HTTP endpoint with a window of requests in
flight) next to a bare ``websockets`` server calling ``broadcast()``, in the same run.
"""

from __future__ import annotations

import os
import time
from typing import Any

from gamesync.bench.accounting import counts
from gamesync.bench.procs import BenchError, Proc
from gamesync.bench.results import Target, latency_summary, median
from gamesync.bench.rig import ClientGroup, Rig, Server
from gamesync.bench.scenarios.contract import Context, Measurement, Scenario
from gamesync.bench.scenarios.steps import MIB, connect, pct

__all__ = ["SCENARIO"]


async def run(ctx: Context) -> Measurement:
    """Each N of ``connections`` against each system, ``runs`` bursts per system."""
    opts = ctx.opts
    systems = opts.systems or ["raw", "gamesync"]
    runs: list[dict[str, Any]] = []
    creds = ctx.credentials(max(opts.connections)) if "gamesync" in systems else None
    for n in opts.connections:
        rounds = max(2, opts.deliveries // (n * opts.games))
        for system in systems:
            async with Rig(opts.workdir, creds) as rig:
                server = await (rig.raw(opts.size) if system == "raw" else rig.gateway())
                group = await rig.clients(system, [server], n, opts.games)
                conn = await connect(ctx, group, f"{system}: connecting {n}")
                publisher = None
                if system != "raw":
                    publisher = await rig.publisher(
                        [rig.http_target(server)], opts.games, opts.size
                    )
                versions = {g: 0 for g in range(1, opts.games + 1)}
                for r in range(opts.runs):
                    row = await _burst(ctx, server, group, publisher, rounds, versions)
                    versions = {int(g): v for g, v in row.pop("last").items()}
                    row.update(
                        system=system,
                        connections=n,
                        games=opts.games,
                        rounds=rounds,
                        run=r + 1,
                        connected=conn["connected"],
                    )
                    runs.append(row)
                    ctx.display.note(
                        f"fanout {system} N={n} run {r + 1}: {row['deliveries_per_s']:,.0f} del/s, "
                        f"{row['deliveries_per_cpu_s']:,.0f} per CPU-s, lost {row['lost']}"
                    )
    summary: dict[str, Any] = {}
    targets: list[Target] = []
    for n in opts.connections:
        med = {}
        for system in systems:
            rows = [r for r in runs if r["system"] == system and r["connections"] == n]
            med[system] = {
                "deliveries_per_s": median([r["deliveries_per_s"] for r in rows]),
                "deliveries_per_cpu_s": median([r["deliveries_per_cpu_s"] for r in rows]),
                "server_cpu_pct": median([r["server_cpu_pct"] for r in rows]),
                "client_cpu_pct": median([r["client_cpu_pct"] for r in rows]),
                "server_rss_mib": median([r["server_rss_mib"] for r in rows]),
            }
        entry: dict[str, Any] = {"median": med}
        if "raw" in med and "gamesync" in med and med["raw"]["deliveries_per_s"]:
            ratio = med["gamesync"]["deliveries_per_s"] / med["raw"]["deliveries_per_s"]
            cpu_ratio = med["gamesync"]["deliveries_per_cpu_s"] / max(
                1.0, med["raw"]["deliveries_per_cpu_s"]
            )
            entry.update(ratio=round(ratio, 3), cpu_ratio=round(cpu_ratio, 3))
            targets.append(
                Target(
                    f"fanout N={n}",
                    "≥ 0.75x raw broadcast() deliveries/s",
                    f"{ratio:.2f}x ({med['gamesync']['deliveries_per_s']:,.0f} vs "
                    f"{med['raw']['deliveries_per_s']:,.0f}/s)",
                    ratio >= 0.75,
                )
            )
            targets.append(
                Target(
                    f"fanout N={n}, per server CPU-second",
                    "≥ 0.75x raw broadcast() deliveries per CPU-s",
                    f"{cpu_ratio:.2f}x ({med['gamesync']['deliveries_per_cpu_s']:,.0f} vs "
                    f"{med['raw']['deliveries_per_cpu_s']:,.0f})",
                    cpu_ratio >= 0.75,
                )
            )
        summary[str(n)] = entry
    params = {
        "connections": opts.connections,
        "games": opts.games,
        "deliveries": opts.deliveries,
        "size": opts.size,
        "runs": opts.runs,
        "systems": systems,
    }
    return Measurement(params, runs, summary, targets)


async def _burst(
    ctx: Context,
    server: Server,
    group: ClientGroup,
    publisher: Proc | None,
    rounds: int,
    versions: dict[int, int],
) -> dict[str, Any]:
    """``rounds`` snapshots of every game back to back; the row once every client converged."""
    await group.begin({g: v + 1 for g, v in versions.items()})
    cpu0, ccpu0 = server.proc.cpu(), group.cpu()
    t0 = time.monotonic()
    if publisher is None:
        reply = await server.proc.call(f"fanout {rounds}", 300)
    else:
        reply = await publisher.call(
            {"cmd": "burst", "rounds": rounds, "window": ctx.opts.window}, 300
        )
    if "error" in reply:
        raise BenchError(f"publish failed: {reply['error']}")
    last = {int(g): int(v) for g, v in reply["last"].items()}
    waited = await group.wait(last, 15)
    cpu1, ccpu1 = server.proc.cpu(), group.cpu()
    rep, samples = await group.report(last)
    secs = max(1e-6, waited["last_rx"] - t0)
    delivered = rep["delivered"]
    server_cpu = cpu1 - cpu0
    return {
        **counts(rep),
        "secs": round(secs, 4),
        "deliveries_per_s": round(delivered / secs, 1),
        "server_cpu_s": round(server_cpu, 3),
        "deliveries_per_cpu_s": round(delivered / server_cpu, 1) if server_cpu > 0 else 0.0,
        "server_cpu_pct": pct(server_cpu, secs),
        "client_cpu_pct": pct(ccpu1 - ccpu0, secs),
        "server_rss_mib": round(server.proc.rss() / MIB, 1),
        "latency_ms": latency_summary(samples),
        "statuses": reply.get("statuses", {}),
        "loadavg_1m": round(os.getloadavg()[0], 2),
        "last": last,
    }


SCENARIO = Scenario(
    name="fanout",
    run=run,
    defaults={"connections": [1000, 5000], "games": 1, "runs": 3},
    columns=(
        "system",
        "connections",
        "run",
        "delivered",
        "skipped",
        "lost",
        "deliveries_per_s",
        "deliveries_per_cpu_s",
        "server_cpu_pct",
        "client_cpu_pct",
        "server_rss_mib",
        "loadavg_1m",
    ),
)
