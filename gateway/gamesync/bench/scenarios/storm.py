"""``storm``: admissions per second per process when a crowd reconnects at once (issue 14.5).

An admission is what a reconnecting client waits for: the websocket handshake, the token's
verification and the first subscription answered (``/ws/games/{id}``: ``welcome`` then
``subscribed``). Each run starts a fresh gateway (on Redis, admission pacing lifted) and storms
it twice with the same ``clients`` tokens: first ``cold`` (tokens it never saw: every one is an
ES256 verification), then ``hot`` (the same clients coming back, as after a pod loss or a
network blip: answered by the verified-token cache). Next to it, in the same run, a bare
``websockets`` server (``gamesync.bench.rawserver``: handshake and one ``subscribed`` frame,
no auth) takes the same crowd.

Two rates per storm: wall-clock (connected / seconds until the last one was admitted; the load
client shares the machine) and per server CPU-second (connected / CPU seconds the server
process spent on the storm: what one process does at one full core, the figure the fleet cost
model uses). The goal compares the latter, hot, with the bare server's, same run. With
``--profile S``, run 1 ends with two more storms (cold with tokens no storm used, then hot),
not counted, each under py-spy for S seconds (the storm must last that long to fill it).
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

import httpx

from gamesync.bench.procs import BenchError, Proc
from gamesync.bench.profile import record, summarize
from gamesync.bench.results import Target
from gamesync.bench.rig import Rig, Server
from gamesync.bench.scenarios.contract import Context, Measurement, Scenario
from gamesync.bench.scenarios.steps import connect, med

__all__ = ["SCENARIO"]

#: Connections a load process opens at once: a crowd, not a queue (the client's default is 200).
AT_ONCE = 1000
#: The gateway flags of a storm besides UNPACED: as many unauthenticated sockets as arrive at
#: once (the default cap, 1,000, would turn part of the crowd away with 1013 instead).
STORM_FLAGS = ["--max-pending-connections", "20000"]
#: Clients of the untimed warm-up (first-use costs stay out of the first storm), and beyond it
#: the CPU the server may still burn per 0.25 s while it is called quiet (closes handled).
WARM_UP = 20
QUIET_CPU = 0.01
PHASES = ("cold", "hot")


async def _quiet(server: Server, timeout: float = 30.0) -> None:
    """Wait until the server has finished with the last crowd (closes, unsubscribes)."""
    deadline = time.monotonic() + timeout
    before = server.proc.cpu()
    while time.monotonic() < deadline:
        await asyncio.sleep(0.25)
        now = server.proc.cpu()
        if now - before < QUIET_CPU:
            return
        before = now
    raise BenchError(f"{server.kind} still busy {timeout:.0f} s after a storm")


async def _emptied(server: Server, timeout: float = 30.0) -> None:
    """Wait until a gateway holds no connection and no game (the linger has ended): each storm
    then subscribes its games afresh, so cold and hot differ only in the token cache."""
    deadline = time.monotonic() + timeout
    url = f"http://127.0.0.1:{server.internal_port}/v1/stats"
    async with httpx.AsyncClient() as client:
        while time.monotonic() < deadline:
            stats = (await client.get(url, timeout=5)).json()
            if stats["connections"] == 0 and stats["games"] == 0:
                return
            await asyncio.sleep(0.25)
    raise BenchError(f"the gateway still held connections or games {timeout:.0f} s after a storm")


async def _storm(
    ctx: Context,
    rig: Rig,
    server: Server,
    kind: str,
    label: str,
    redis: Proc | None,
    *,
    offset: int = 0,
    profile_to: Path | None = None,
) -> dict[str, Any]:
    """One crowd of ``clients`` connecting at once; its rates, then every socket closed."""
    n, games = ctx.opts.clients, max(1, ctx.opts.games)
    group = await rig.clients(kind, [server], n, games, offset=offset, concurrency=min(AT_ONCE, n))
    profiling = None
    if profile_to is not None:
        profiling = asyncio.ensure_future(record(server.proc.pid, ctx.opts.profile, profile_to))
    cpu_before = server.proc.cpu()
    redis_before = redis.cpu() if redis is not None else 0.0
    result = await connect(ctx, group, f"{label}: {n} at once")
    cpu = server.proc.cpu() - cpu_before
    redis_cpu = redis.cpu() - redis_before if redis is not None else 0.0
    if profiling is not None:
        await profiling
    for proc in group.procs:
        await rig.stop(proc)
    if server.internal_port is not None:
        await _emptied(server)
    await _quiet(server)
    connected, secs = result["connected"], result["secs"]
    return {
        "connected": connected,
        "failed": result["failed"],
        "secs": round(secs, 3),
        "admissions_per_s": round(connected / max(secs, 1e-6), 1),
        "server_cpu_s": round(cpu, 3),
        "admissions_per_cpu_s": round(connected / max(cpu, 1e-6), 1),
        "us_per_admission": round(1e6 * cpu / max(connected, 1), 1),
        # the subscriptions the crowd brings (SUBSCRIBE and GET of each game new to the pod)
        "redis_us_per_admission": round(1e6 * redis_cpu / max(connected, 1), 1),
    }


async def _profiled(ctx: Context, rig: Rig, gateway: Server, redis: Proc) -> dict[str, Any]:
    """Two more storms (not counted) under py-spy, cold with tokens no storm used, then hot."""
    profiles: dict[str, Any] = {}
    for phase in PHASES:
        out = ctx.opts.workdir / f"profile-storm-{phase}.txt"
        await _storm(
            ctx,
            rig,
            gateway,
            "gamesync",
            f"profiled {phase}",
            redis,
            offset=ctx.opts.clients + WARM_UP,
            profile_to=out,
        )
        profiles[phase] = summarize(out) if out.exists() else None
    return profiles


async def _run_once(ctx: Context, r: int, profiles: dict[str, Any]) -> list[dict[str, Any]]:
    """One run: a fresh gateway stormed cold then hot, then the bare server."""
    opts = ctx.opts
    n = opts.clients
    games = max(1, opts.games)
    creds = ctx.credentials(2 * n + WARM_UP)
    rows: list[dict[str, Any]] = []
    async with Rig(opts.workdir, creds) as rig:
        redis_port, redis = await rig.redis()
        gateway = await rig.gateway(f"redis://127.0.0.1:{redis_port}/0", STORM_FLAGS, paced=False)
        raw = await rig.raw(opts.size)
        for server, kind in ((gateway, "gamesync"), (raw, "raw")):
            # Tokens n to n + WARM_UP: no storm uses them, so the cache stays cold for the storms.
            warm = await rig.clients(kind, [server], WARM_UP, games, offset=n)
            await warm.connect(30)
            for proc in warm.procs:
                await rig.stop(proc)
            if server.internal_port is not None:
                await _emptied(server)
            await _quiet(server)
        for phase in PHASES:
            row = await _storm(ctx, rig, gateway, "gamesync", f"gamesync {phase}", redis)
            rows.append({"system": "gamesync", "phase": phase, "run": r, **row})
        row = await _storm(ctx, rig, raw, "raw", "bare websockets", None)
        rows.append({"system": "websockets", "phase": "handshake", "run": r, **row})
        if opts.profile > 0 and r == 1:
            profiles.update(await _profiled(ctx, rig, gateway, redis))
    for row in rows:
        ctx.display.note(
            f"storm run {r} {row['system']} {row['phase']}: {row['admissions_per_s']:.0f}/s wall, "
            f"{row['admissions_per_cpu_s']:.0f}/CPU-s ({row['failed']} failed)"
        )
    return rows


def _ratios(rows: list[dict[str, Any]], r: int) -> dict[str, float]:
    """GameSync's rates over the bare server's, within run ``r``."""
    mine = {row["phase"]: row for row in rows if row["run"] == r}
    bare = mine["handshake"]
    return {
        f"{phase}_{key}_ratio": round(mine[phase][key] / max(bare[key], 1e-6), 3)
        for phase in PHASES
        for key in ("admissions_per_cpu_s", "admissions_per_s")
    }


async def run(ctx: Context) -> Measurement:
    """``runs`` runs, each a fresh gateway and bare server; medians of same-run ratios."""
    opts = ctx.opts
    rows: list[dict[str, Any]] = []
    profiles: dict[str, Any] = {}
    for r in range(1, opts.runs + 1):
        rows += await _run_once(ctx, r, profiles)
    ratios = [_ratios(rows, r) for r in range(1, opts.runs + 1)]
    for row in rows:
        if row["system"] == "gamesync":
            mine = ratios[row["run"] - 1]
            row["ratio_per_cpu_s"] = mine[f"{row['phase']}_admissions_per_cpu_s_ratio"]
            row["ratio_wall"] = mine[f"{row['phase']}_admissions_per_s_ratio"]
    summary: dict[str, Any] = {}
    for phase in (*PHASES, "handshake"):
        mine = [row for row in rows if row["phase"] == phase]
        summary[phase] = {
            "admissions_per_s": med(mine, "admissions_per_s"),
            "admissions_per_cpu_s": med(mine, "admissions_per_cpu_s"),
            "us_per_admission": med(mine, "us_per_admission"),
            "failed": sum(row["failed"] for row in mine),
        }
    for key in ratios[0]:
        summary[key] = med([{key: ratio[key]} for ratio in ratios], key)
    if profiles:
        summary["profiles"] = profiles
    targets = [
        Target(
            f"storm N={opts.clients} {phase}",
            "≥ 0.5x a bare websockets server's accept rate per CPU-second (issue 14.5)",
            f"{summary[f'{phase}_admissions_per_cpu_s_ratio']:.2f}x "
            f"({summary[phase]['admissions_per_cpu_s']:.0f} vs "
            f"{summary['handshake']['admissions_per_cpu_s']:.0f}/CPU-s)",
            summary[f"{phase}_admissions_per_cpu_s_ratio"] >= 0.5,
        )
        for phase in PHASES
    ]
    targets.append(
        Target(
            f"storm N={opts.clients} admitted",
            "every client of every storm admitted",
            f"{sum(row['failed'] for row in rows)} failed",
            all(row["failed"] == 0 and row["connected"] == opts.clients for row in rows),
        )
    )
    params = {
        "clients": opts.clients,
        "games": opts.games,
        "runs": opts.runs,
        "at_once": AT_ONCE,
        "gateway_flags": STORM_FLAGS,
    }
    return Measurement(params, rows, summary, targets)


SCENARIO = Scenario(
    name="storm",
    run=run,
    defaults={"clients": 5000, "games": 1250, "runs": 3},
    columns=(
        "system",
        "phase",
        "run",
        "connected",
        "failed",
        "secs",
        "admissions_per_s",
        "server_cpu_s",
        "admissions_per_cpu_s",
        "us_per_admission",
        "redis_us_per_admission",
        "ratio_per_cpu_s",
        "ratio_wall",
    ),
)
