"""The push run shared by ``latency``, ``peer`` and ``slow``: servers, clients, a paced window.

A push system is N servers (GameSync gateways or python-socketio peers) behind one client group
and one publisher; a window publishes at a fixed rate for a fixed time, waits (bounded) for every
client to converge, then reads CPU, RSS, the gateways' own publish→send histogram and the load
clients' delivery counts.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from gamesync.bench.accounting import INVARIANTS, counts
from gamesync.bench.metrics import histogram_delta, scrape_histogram
from gamesync.bench.procs import BenchError, Proc
from gamesync.bench.profile import record, summarize
from gamesync.bench.results import Target, cdf_points, latency_summary
from gamesync.bench.rig import ClientGroup, Rig, Server
from gamesync.bench.scenarios.contract import Context, Options
from gamesync.bench.scenarios.steps import MIB, RssSampler, connect, pct

__all__ = ["COLUMNS", "PushSetup", "lossless", "params", "run_system", "window"]

# The digest's per-run columns of a push run (``slow`` adds its own).
COLUMNS = (
    "system",
    "run",
    "connected",
    "delivered",
    "lost",
    "skipped",
    "duplicates",
    "out_of_order",
    "latency_ms.p50",
    "latency_ms.p90",
    "latency_ms.p99",
    "latency_ms.p999",
    "latency_ms.max",
    "server_cpu_pct",
    "redis_cpu_pct",
    "client_cpu_pct",
    "publisher_cpu_pct",
    "deliveries_per_cpu_s",
    "server_rss_mib",
    "publisher_late",
    "publish_rate",
    "server_side.within_10ms",
    "server_side.p99_le_ms",
    "loadavg_1m",
)


@dataclass
class PushSetup:
    """The processes of one push system, connected and ready to publish."""

    servers: list[Server]
    group: ClientGroup
    publisher: Proc
    redis: Proc | None
    connected: dict[str, Any]


async def _setup(
    ctx: Context,
    rig: Rig,
    system: str,
    *,
    clients: int,
    games: int,
    nservers: int,
    broker: str,
    multi: dict[int, list[int]] | None = None,
) -> PushSetup:
    opts = ctx.opts
    redis_proc = None
    redis_port = 0
    redis_url = ""
    if broker == "redis" or system == "socketio":
        redis_port, redis_proc = await rig.redis()
        redis_url = f"redis://127.0.0.1:{redis_port}/0"
    servers: list[Server] = []
    for _ in range(nservers):
        if system == "socketio":
            servers.append(await rig.peer(redis_url))
        else:
            servers.append(await rig.gateway(redis_url if broker == "redis" else None))
    count = clients + len(multi or {})
    group = await rig.clients(
        system, servers, count, games, multi=multi, placement=ctx.opts.placement
    )
    connected = await connect(ctx, group, f"{system}: connecting {count}")
    if system == "socketio":
        target: dict[str, Any] = {"kind": "socketio", "url": redis_url}
    elif broker == "redis":
        target = {"kind": "redis", "host": "127.0.0.1", "port": redis_port}
    else:
        target = rig.http_target(servers[0])
    publisher = await rig.publisher([target], games, opts.size)
    return PushSetup(servers, group, publisher, redis_proc, connected)


def _server_close_code(log_path: Path, index: int) -> int | None:
    """The close code the gateway logged for user ``u{index}`` (a client that stopped reading
    never sees the close frame: it is queued behind the full buffer, then the socket is aborted).
    """
    code = None
    marker = f'"user": "u{index}"'
    try:
        lines = log_path.read_text(errors="replace").splitlines()
    except OSError:
        return None
    for line in lines:
        if marker in line and "connection_end" in line:
            with contextlib.suppress(ValueError, KeyError):
                code = int(json.loads(line.removeprefix("[stdout] "))["closeCode"])
    return code


async def _scrape_all(gateways: list[Server]) -> list[dict[float, float]] | None:
    """The gateways' publish→send histograms, or None if one cannot be read."""
    try:
        return [await scrape_histogram(s.internal_port or 0) for s in gateways]
    except (OSError, TimeoutError):
        return None


async def _delayed_record(pid: int, seconds: float, out: Path) -> Path | None:
    await asyncio.sleep(1.0)
    return await record(pid, seconds, out)


async def window(
    ctx: Context,
    setup: PushSetup,
    *,
    rate: float,
    seconds: float,
    versions: dict[int, int],
    before: Callable[[], Awaitable[None]] | None = None,
    profile_to: Path | None = None,
) -> tuple[dict[str, Any], np.ndarray, list[tuple[float, float]]]:
    """One publishing window: its row, its latency samples (ms) and the servers' RSS series."""
    group, servers = setup.group, setup.servers
    await group.begin({g: v + 1 for g, v in versions.items()})
    if before is not None:
        await before()
    sampler = RssSampler([s.proc for s in servers])
    cpu0 = [s.proc.cpu() for s in servers]
    rcpu0 = setup.redis.cpu() if setup.redis else 0.0
    ccpu0, pcpu0 = group.cpu(), setup.publisher.cpu()
    gateways = [s for s in servers if s.kind == "gamesync" and s.internal_port]
    hist0 = await _scrape_all(gateways)
    t0 = time.monotonic()
    sampler.start()
    profiling = None
    if profile_to is not None:
        # Start a second in, so the profile covers the steady state only.
        profile_secs = min(ctx.opts.profile, max(1.0, seconds - 2))
        profiling = asyncio.ensure_future(
            _delayed_record(servers[0].proc.pid, profile_secs, profile_to)
        )
    reply = await ctx.display.timed(
        f"publishing {rate:,.0f}/s for {seconds:.0f} s",
        seconds,
        setup.publisher.call({"cmd": "run", "rate": rate, "seconds": seconds}, seconds + 120),
    )
    profile_summary = None
    if profiling is not None:
        recorded = await profiling
        profile_summary = summarize(recorded) if recorded is not None else None
    if "error" in reply:
        raise BenchError(f"publisher failed: {reply['error']}")
    last = {int(g): int(v) for g, v in reply["last"].items()}
    waited = await group.wait(last, 5)
    secs = time.monotonic() - t0
    cpu1 = [s.proc.cpu() for s in servers]
    rcpu1 = setup.redis.cpu() if setup.redis else 0.0
    ccpu1, pcpu1 = group.cpu(), setup.publisher.cpu()
    series = await sampler.stop()
    hist1 = await _scrape_all(gateways)
    server_side = histogram_delta(hist0, hist1) if hist0 and hist1 else None
    rep, samples = await group.report(last)
    server_cpu = sum(cpu1) - sum(cpu0)
    row = {
        "published": reply["published"],
        "publisher_late": reply["late"],
        "publish_secs": round(reply["secs"], 3),
        "publish_rate": round(reply["published"] / max(1e-6, reply["secs"]), 1),
        "converged": waited["converged"],
        **counts(rep),
        "open_connections": rep["open"],
        "errors": rep["errors"],
        "resubscribes": rep["resubscribes"],
        "closed": rep["closed"],
        "slow": rep["slow"],
        "latency_ms": latency_summary(samples),
        "server_cpu_s": round(server_cpu, 3),
        "server_cpu_pct": pct(server_cpu, secs),
        "server_cpu_pct_each": [pct(b - a, secs) for a, b in zip(cpu0, cpu1, strict=True)],
        "deliveries_per_cpu_s": round(rep["delivered"] / server_cpu, 1) if server_cpu else 0.0,
        "redis_cpu_pct": pct(rcpu1 - rcpu0, secs),
        "client_cpu_pct": pct(ccpu1 - ccpu0, secs),
        "publisher_cpu_pct": pct(pcpu1 - pcpu0, secs),
        "server_rss_mib": round(sum(s.proc.rss() for s in servers) / MIB, 1),
        "window_secs": round(secs, 3),
        "loadavg_1m": round(os.getloadavg()[0], 2),
        "profile": profile_summary,
        "server_side": server_side,
        "last": last,
    }
    return row, samples, series


async def run_system(
    ctx: Context,
    system: str,
    *,
    broker: str,
    nservers: int,
    runs: int,
    label: str,
    multi: dict[int, list[int]] | None = None,
    slow: bool | None = None,
) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """``runs`` windows against one freshly started ``system``: the rows and the plot series.

    With ``multi`` (connection index -> its games) those connections are kept out of the
    totals; with ``slow`` they also stop reading, and only one window runs.
    """
    opts = ctx.opts
    rows: list[dict[str, Any]] = []
    series: dict[str, Any] = {}
    creds = ctx.credentials(opts.clients + 1) if system == "gamesync" else None
    async with Rig(opts.workdir, creds) as rig:
        setup = await _setup(
            ctx,
            rig,
            system,
            clients=opts.clients,
            games=opts.games,
            nservers=nservers,
            broker=broker,
            multi=multi,
        )
        versions = {g: 0 for g in range(1, opts.games + 1)}
        all_samples = []
        for r in range(runs):

            async def before() -> None:
                if multi:
                    await setup.group.exclude(list(multi), stop_reading=bool(slow))

            profile_to = None
            if opts.profile > 0 and r == 0:
                profile_to = opts.workdir / f"profile-{label}-{setup.servers[0].kind}.txt"
            row, samples, rss = await window(
                ctx,
                setup,
                rate=opts.rate,
                seconds=opts.seconds,
                versions=versions,
                before=before,
                profile_to=profile_to,
            )
            if multi and slow:
                await setup.group.resume()
                await asyncio.sleep(1.0)  # let the resumed socket read what the server left it
                extra, _ = await setup.group.report(row["last"])
                row["slow"] = extra["slow"]
            if row["slow"]:
                row["slow_close_code"] = row["slow"][0]["close_code"]
                row["slow_server_close_code"] = _server_close_code(
                    setup.servers[0].proc.log_path, row["slow"][0]["index"]
                )
                row["slow_delivered"] = row["slow"][0]["delivered"]
                row["slow_skipped"] = row["slow"][0]["skipped"]
            versions = row.pop("last")
            row.update(
                system=system,
                label=label,
                run=r + 1,
                clients=opts.clients,
                games=opts.games,
                rate=opts.rate,
                seconds=opts.seconds,
                servers=nservers,
                broker=broker,
                connected=setup.connected["connected"],
                connect_failed=setup.connected["failed"],
            )
            rows.append(row)
            all_samples.append(samples)
            series[f"rss:{label}:run{r + 1}"] = rss
            lat = row["latency_ms"]
            ctx.display.note(
                f"{label} run {r + 1}: p50 {lat['p50']:.2f} p99 {lat['p99']:.2f} "
                f"p99.9 {lat['p999']:.2f} max {lat['max']:.1f} ms; server CPU "
                f"{row['server_cpu_pct']}%; lost {row['lost']} dup {row['duplicates']} "
                f"ooo {row['out_of_order']} skipped {row['skipped']}"
            )
            if multi and slow:
                # A paused socket cannot be reused for the next run.
                break
        merged = np.concatenate(all_samples) if all_samples else np.zeros(0)
        series[f"cdf:{label}"] = cdf_points(merged)
    return rows, series


def lossless(label: str, rows: Sequence[Mapping[str, Any]]) -> Target:
    """The target every push window is held to: nothing lost, skipped, duplicated, reordered."""
    return Target(
        label,
        "0 lost, skipped, duplicated, reordered",
        f"{sum(r['delivered'] for r in rows):,} deliveries in {len(rows)} windows",
        all(not any(r[k] for k in (*INVARIANTS, "skipped")) for r in rows),
    )


def params(opts: Options) -> dict[str, Any]:
    """The result's ``params`` of a push scenario."""
    return {
        "placement": opts.placement,
        "clients": opts.clients,
        "games": opts.games,
        "rate": opts.rate,
        "seconds": opts.seconds,
        "servers": opts.gateways,
        "runs": opts.runs,
        "size": opts.size,
    }
