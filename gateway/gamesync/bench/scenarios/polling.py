"""``polling``: push over websockets next to ETag polling of a snapshot endpoint.

The same publisher feeds the gateway and a bare polling server; players either hold a socket
or poll every ``poll_interval`` seconds with ``If-None-Match``.
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np

from gamesync.bench.accounting import counts
from gamesync.bench.procs import BenchError
from gamesync.bench.results import Target, cdf_points, latency_summary, median
from gamesync.bench.rig import Rig
from gamesync.bench.scenarios.contract import Context, Measurement, Scenario
from gamesync.bench.scenarios.steps import connect, med, pct

__all__ = ["SCENARIO"]


async def run(ctx: Context) -> Measurement:
    """Push and polling players side by side on the same updates, ``runs`` windows."""
    opts = ctx.opts
    rate = opts.games / opts.update_interval
    rows: list[dict[str, Any]] = []
    series: dict[str, Any] = {}
    creds = ctx.credentials(opts.players)
    async with Rig(opts.workdir, creds) as rig:
        gateway = await rig.gateway()
        pollsrv = await rig.pollserver()
        push = await rig.clients("gamesync", [gateway], opts.players, opts.games)
        await connect(ctx, push, f"push: connecting {opts.players}")
        poll = await rig.clients(
            "poll", [pollsrv], opts.players, opts.games, poll_interval=opts.poll_interval
        )
        await connect(ctx, poll, f"poll: connecting {opts.players}")
        target = rig.http_target(gateway)
        pub = await rig.publisher(
            [target, {"kind": "poll", "host": "127.0.0.1", "port": pollsrv.port}],
            opts.games,
            opts.size,
        )
        # Seed every game once so pollers start from a known snapshot (not counted).
        seed = await pub.call({"cmd": "burst", "rounds": 1}, 60)
        if "error" in seed:
            raise BenchError(f"seeding the games failed: {seed['error']}")
        versions = {int(g): int(v) for g, v in seed["last"].items()}
        await push.wait(versions, 10)
        # Pollers start now and fetch the seed once (with its ETag) before anything is counted,
        # as players who have been polling for a while would have.
        await poll.begin({g: v for g, v in versions.items()})
        await poll.wait(versions, opts.poll_interval + 2)
        all_samples: dict[str, list[np.ndarray]] = {"push": [], "poll": []}
        for r in range(opts.runs):
            first = {g: v + 1 for g, v in versions.items()}
            cpus0 = {"push": gateway.proc.cpu(), "poll": pollsrv.proc.cpu()}
            await push.begin(first)
            await poll.begin(first)
            t0 = time.monotonic()
            reply = await ctx.display.timed(
                f"updates {rate:,.1f}/s for {opts.seconds:.0f} s",
                opts.seconds,
                pub.call({"cmd": "run", "rate": rate, "seconds": opts.seconds}, opts.seconds + 60),
            )
            last = {int(g): int(v) for g, v in reply["last"].items()}
            await push.wait(last, 5)
            await poll.wait(last, opts.poll_interval + 2)
            secs = time.monotonic() - t0
            cpus1 = {"push": gateway.proc.cpu(), "poll": pollsrv.proc.cpu()}
            for name, group in (("push", push), ("poll", poll)):
                rep, samples = await group.report(last)
                minutes = secs / 60 * opts.players
                row = {
                    "system": name,
                    "run": r + 1,
                    "players": opts.players,
                    "games": opts.games,
                    "updates": reply["published"],
                    "secs": round(secs, 2),
                    "requests_per_player_min": round(rep["requests"] / minutes, 2),
                    "messages_per_player_min": round(rep["messages"] / minutes, 2),
                    "bytes_per_player_min": round((rep["bytes_in"] + rep["bytes_out"]) / minutes),
                    "not_modified": rep["not_modified"],
                    **counts(rep),
                    "staleness_ms": latency_summary(samples),
                    "server_cpu_pct": pct(cpus1[name] - cpus0[name], secs),
                }
                rows.append(row)
                all_samples[name].append(samples)
                ctx.display.note(
                    f"{name} run {r + 1}: staleness p50 {row['staleness_ms']['p50']:.0f} ms "
                    f"p99 {row['staleness_ms']['p99']:.0f} ms, "
                    f"{row['bytes_per_player_min']:,} B/player-min"
                )
            versions = last
        for name, arrays in all_samples.items():
            series[f"cdf:{name}"] = cdf_points(np.concatenate(arrays) if arrays else np.zeros(0))
    summary: dict[str, Any] = {}
    for name in ("push", "poll"):
        mine = [r for r in rows if r["system"] == name]
        summary[name] = {
            "requests_per_player_min": med(mine, "requests_per_player_min"),
            "messages_per_player_min": med(mine, "messages_per_player_min"),
            "bytes_per_player_min": med(mine, "bytes_per_player_min"),
            "staleness_p50_ms": round(median([r["staleness_ms"]["p50"] for r in mine]), 2),
            "staleness_p99_ms": round(median([r["staleness_ms"]["p99"] for r in mine]), 2),
            "server_cpu_pct": med(mine, "server_cpu_pct"),
        }
    ratio_bytes = summary["poll"]["bytes_per_player_min"] / max(
        1.0, summary["push"]["bytes_per_player_min"]
    )
    summary["bytes_ratio_poll_over_push"] = round(ratio_bytes, 2)
    params = {
        "players": opts.players,
        "games": opts.games,
        "update_interval": opts.update_interval,
        "poll_interval": opts.poll_interval,
        "seconds": opts.seconds,
        "runs": opts.runs,
        "size": opts.size,
    }
    targets = [
        Target(
            "polling vs push (informational)",
            "push fresher and cheaper than 3 s polling",
            f"staleness p50 {summary['push']['staleness_p50_ms']:.1f} vs "
            f"{summary['poll']['staleness_p50_ms']:.0f} ms; "
            f"bytes {ratio_bytes:.1f}x more when polling",
            summary["push"]["staleness_p99_ms"] < summary["poll"]["staleness_p50_ms"],
        )
    ]
    return Measurement(params, rows, summary, targets, series)


SCENARIO = Scenario(
    name="polling",
    run=run,
    defaults={"players": 1000, "games": 250, "seconds": 60.0, "runs": 1},
    columns=(
        "system",
        "run",
        "players",
        "requests_per_player_min",
        "messages_per_player_min",
        "bytes_per_player_min",
        "staleness_ms.p50",
        "staleness_ms.p99",
        "delivered",
        "skipped",
        "lost",
        "server_cpu_pct",
    ),
)
