"""The six benchmark scenarios of issue 8, each a function from options to a result payload.

Every scenario measures GameSync and its baseline in the same invocation, so the figures that
matter are ratios from one run on one (noisy) machine. Every loop is bounded: connection ramps
and replies have deadlines, publishing windows have a fixed count and length.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import math
import os
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from gamesync.bench.display import Display
from gamesync.bench.metrics import histogram_delta, scrape_histogram
from gamesync.bench.procs import BenchError, Proc
from gamesync.bench.profile import record, summarize
from gamesync.bench.results import Target, cdf_points, latency_summary, median
from gamesync.bench.rig import ClientGroup, Rig, Server
from gamesync.bench.tokens import Credentials, make_credentials

__all__ = ["SCENARIO_FUNCS", "Options"]

MIB = 1024 * 1024


@dataclass
class Options:
    """Command-line options after per-scenario defaults were applied."""

    scenario: str
    workdir: Path
    runs: int = 3
    size: int = 2048
    connections: list[int] = field(default_factory=lambda: [1000, 5000])
    games: int = 1
    deliveries: int = 100_000
    clients: int = 5000
    rate: float = 2000.0
    seconds: float = 20.0
    gateways: int = 2
    systems: list[str] = field(default_factory=list)
    players: int = 1000
    poll_interval: float = 3.0
    update_interval: float = 5.0
    slow_games: int = 30
    hold: float = 5.0
    connect_timeout: float = 120.0
    window: int = 8
    profile: float = 0.0
    settle: float = 3.0
    placement: str = "spread"


@dataclass
class Outcome:
    """What a scenario hands back: per-run rows, summary, targets, series for plots."""

    params: dict[str, Any]
    runs: list[dict[str, Any]]
    summary: dict[str, Any]
    targets: list[Target]
    series: dict[str, Any] = field(default_factory=dict)


class Ctx:
    def __init__(self, opts: Options, display: Display) -> None:
        self.opts = opts
        self.display = display
        self._creds: Credentials | None = None

    def credentials(self, users: int) -> Credentials:
        if self._creds is None:
            self._creds = make_credentials(self.opts.workdir / "keys", users)
        return self._creds


# -- shared steps ----------------------------------------------------------------------------


async def connect(ctx: Ctx, group: ClientGroup, label: str) -> dict[str, Any]:
    result = await ctx.display.counting(
        label, group.count, lambda update: group.connect(ctx.opts.connect_timeout, update)
    )
    if result["failed"]:
        ctx.display.note(f"[yellow]{label}: {result['failed']} failed: {result['failures']}")
    return result


class RssSampler:
    """Samples the summed RSS of some processes every ``period`` seconds in the background."""

    def __init__(self, procs: list[Proc], period: float = 0.25) -> None:
        self.procs = procs
        self.period = period
        self.series: list[tuple[float, float]] = []
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self.t0 = time.monotonic()
        self._task = asyncio.create_task(self._run())

    async def _run(self) -> None:
        while True:
            rss = sum(p.rss() for p in self.procs) / MIB
            self.series.append((round(time.monotonic() - self.t0, 3), round(rss, 2)))
            await asyncio.sleep(self.period)

    async def stop(self) -> list[tuple[float, float]]:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        return self.series


def invariants(row: dict[str, Any]) -> dict[str, int]:
    return {k: int(row.get(k, 0)) for k in ("lost", "duplicates", "out_of_order")}


def pct(cpu: float, secs: float) -> float:
    return round(100.0 * cpu / secs, 1) if secs > 0 else 0.0


# -- 1. fanout -------------------------------------------------------------------------------


async def fanout(ctx: Ctx) -> Outcome:
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
                    row = await _fanout_run(ctx, server, group, publisher, rounds, versions)
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
    return Outcome(params, runs, summary, targets)


async def _fanout_run(
    ctx: Ctx,
    server: Server,
    group: ClientGroup,
    publisher: Proc | None,
    rounds: int,
    versions: dict[int, int],
) -> dict[str, Any]:
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
        "delivered": delivered,
        "expected": rep["expected"],
        "skipped": rep["skipped"],
        "lost": rep["lost"],
        "duplicates": rep["duplicates"],
        "out_of_order": rep["out_of_order"],
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


# -- 2/3/6. push runs (latency, peer, slow) --------------------------------------------------


@dataclass
class PushSetup:
    servers: list[Server]
    group: ClientGroup
    publisher: Proc
    redis: Proc | None
    connected: dict[str, Any]


async def _push_setup(
    ctx: Ctx,
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
    redis_url = ""
    if broker == "redis" or system == "socketio":
        port, redis_proc = await rig.redis()
        redis_url = f"redis://127.0.0.1:{port}/0"
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
        assert redis_proc is not None
        target = {"kind": "redis", "host": "127.0.0.1", "port": int(redis_url.split(":")[2][:-2])}
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


async def _push_run(
    ctx: Ctx,
    setup: PushSetup,
    *,
    rate: float,
    seconds: float,
    versions: dict[int, int],
    before: Callable[[], Awaitable[None]] | None = None,
    profile_to: Path | None = None,
) -> tuple[dict[str, Any], np.ndarray, list[tuple[float, float]]]:
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
        "delivered": rep["delivered"],
        "expected": rep["expected"],
        "skipped": rep["skipped"],
        "lost": rep["lost"],
        "duplicates": rep["duplicates"],
        "out_of_order": rep["out_of_order"],
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


async def _push_system(
    ctx: Ctx,
    system: str,
    *,
    broker: str,
    nservers: int,
    runs: int,
    label: str,
    multi: dict[int, list[int]] | None = None,
    slow: bool | None = None,
) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    opts = ctx.opts
    rows: list[dict[str, Any]] = []
    series: dict[str, Any] = {}
    creds = ctx.credentials(opts.clients + 1) if system == "gamesync" else None
    async with Rig(opts.workdir, creds) as rig:
        setup = await _push_setup(
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
            row, samples, rss = await _push_run(
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


def _med_latency(rows: list[dict[str, Any]]) -> dict[str, float]:
    keys = ("p50", "p90", "p99", "p999", "max")
    return {k: round(median([r["latency_ms"][k] for r in rows]), 3) for k in keys}


def _med(rows: list[dict[str, Any]], key: str) -> float:
    return round(median([float(r[key]) for r in rows]), 3)


async def latency(ctx: Ctx) -> Outcome:
    opts = ctx.opts
    rows, series = await _push_system(
        ctx, "gamesync", broker="redis", nservers=opts.gateways, runs=opts.runs, label="gamesync"
    )
    lat = _med_latency(rows)
    dps = opts.rate * max(1, opts.clients // max(1, opts.games))
    lost = sum(r["lost"] + r["skipped"] for r in rows)
    summary = {
        "latency_ms": lat,
        "server_cpu_pct": _med(rows, "server_cpu_pct"),
        "redis_cpu_pct": _med(rows, "redis_cpu_pct"),
        "client_cpu_pct": _med(rows, "client_cpu_pct"),
        "deliveries_per_s": dps,
        "deliveries_per_cpu_s": _med(rows, "deliveries_per_cpu_s"),
    }
    where = f"{opts.clients} clients / {dps:,.0f} deliveries/s"
    targets = [
        Target(f"latency p99 ({where})", "≤ 10 ms", f"{lat['p99']:.2f} ms", lat["p99"] <= 10),
        Target(f"latency p99.9 ({where})", "≤ 50 ms", f"{lat['p999']:.2f} ms", lat["p999"] <= 50),
        Target("latency lost", "0 lost (and nothing skipped)", str(lost), lost == 0),
    ]
    return Outcome(_push_params(opts), rows, summary, targets, series)


def _push_params(opts: Options) -> dict[str, Any]:
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


async def peer(ctx: Ctx) -> Outcome:
    opts = ctx.opts
    from gamesync.bench.peer import require_socketio

    require_socketio()
    systems = opts.systems or ["gamesync", "socketio"]
    rows: list[dict[str, Any]] = []
    series: dict[str, Any] = {}
    for system in systems:
        r, s = await _push_system(
            ctx, system, broker="redis", nservers=opts.gateways, runs=opts.runs, label=system
        )
        rows += r
        series.update(s)
    summary: dict[str, Any] = {}
    for system in systems:
        mine = [r for r in rows if r["system"] == system]
        summary[system] = {
            "latency_ms": _med_latency(mine),
            "deliveries_per_cpu_s": _med(mine, "deliveries_per_cpu_s"),
            "server_cpu_pct": _med(mine, "server_cpu_pct"),
            "server_rss_mib": _med(mine, "server_rss_mib"),
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
    return Outcome({**_push_params(opts), "systems": systems}, rows, summary, targets, series)


async def slow(ctx: Ctx) -> Outcome:
    opts = ctx.opts
    slow_games = list(range(1, min(opts.slow_games, opts.games) + 1))
    multi = {opts.clients: slow_games}
    rows: list[dict[str, Any]] = []
    series: dict[str, Any] = {}
    for r in range(opts.runs):
        for variant, is_slow in (("baseline", False), ("slow", True)):
            got, s = await _push_system(
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
    p99_base = _med_latency(base)["p99"]
    p99_slow = _med_latency(slowr)["p99"]
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
        "baseline_latency_ms": _med_latency(base),
        "slow_latency_ms": _med_latency(slowr),
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
    params = {**_push_params(opts), "servers": 1, "broker": "memory", "slow_games": len(slow_games)}
    return Outcome(params, rows, summary, targets, series)


# -- 4. polling ------------------------------------------------------------------------------


async def polling(ctx: Ctx) -> Outcome:
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
                    "delivered": rep["delivered"],
                    "expected": rep["expected"],
                    "skipped": rep["skipped"],
                    "lost": rep["lost"],
                    "duplicates": rep["duplicates"],
                    "out_of_order": rep["out_of_order"],
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
            "requests_per_player_min": _med(mine, "requests_per_player_min"),
            "messages_per_player_min": _med(mine, "messages_per_player_min"),
            "bytes_per_player_min": _med(mine, "bytes_per_player_min"),
            "staleness_p50_ms": round(median([r["staleness_ms"]["p50"] for r in mine]), 2),
            "staleness_p99_ms": round(median([r["staleness_ms"]["p99"] for r in mine]), 2),
            "server_cpu_pct": _med(mine, "server_cpu_pct"),
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
    return Outcome(params, rows, summary, targets, series)


# -- 5. idle ---------------------------------------------------------------------------------

# One process can hold at most the fd hard limit (20000 here) of sockets; above this many
# connections per gateway process the idle scenario spreads them over several gateways.
PER_GATEWAY_IDLE = 15000


async def idle(ctx: Ctx) -> Outcome:
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
                        await (rig.gateway() if system == "gamesync" else rig.raw(opts.size))
                        for _ in range(nservers)
                    ]
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
                    await asyncio.sleep(opts.hold)
                    held_rss = sum(s.proc.rss() for s in servers)
                    rep1, _ = await first.report({})
                    rep2, _ = await second.report({})
                    rep = {k: rep1[k] + rep2[k] for k in ("open", "duplicates", "out_of_order")}
                    rep["closed"] = {**rep1["closed"], **rep2["closed"]}
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
                        "connected": conn["connected"],
                        "failed": conn["failed"],
                        "held": rep["open"],
                        "connect_secs": round(conn["secs"], 2),
                        "accept_rate": round(conn["connected"] / max(1e-6, conn["secs"]), 1),
                        "rss_base_mib": round(base / MIB, 1),
                        "rss_mib": round(after / MIB, 1),
                        "rss_after_hold_mib": round(held_rss / MIB, 1),
                        "rss_half_mib": round(mid / MIB, 1),
                        "kib_per_conn": round(per, 2),
                        "kib_per_conn_from_base": round(per_from_base, 2),
                        "lost": 0,
                        "duplicates": rep["duplicates"],
                        "out_of_order": rep["out_of_order"],
                        "closed": rep["closed"],
                    }
                    rows.append(row)
                    ctx.display.note(
                        f"idle {system} N={n} run {r + 1}: {per:.1f} KiB/conn, held {rep['open']}"
                    )
    summary: dict[str, Any] = {}
    targets: list[Target] = []
    for n in opts.connections:
        for system in systems:
            mine = [r for r in rows if r["connections"] == n and r["system"] == system]
            kib = _med(mine, "kib_per_conn")
            held = min(r["held"] for r in mine)
            summary[f"{system}:{n}"] = {
                "kib_per_conn": kib,
                "held_min": held,
                "rss_mib": _med(mine, "rss_mib"),
            }
            if system == "gamesync":
                targets.append(
                    Target(
                        f"idle N={n}",
                        "≤ 16 KB per connection",
                        f"{kib:.1f} KiB/conn",
                        kib * 1024 <= 16_000,
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
    return Outcome(params, rows, summary, targets)


SCENARIO_FUNCS: dict[str, Callable[[Ctx], Awaitable[Outcome]]] = {
    "fanout": fanout,
    "latency": latency,
    "peer": peer,
    "polling": polling,
    "idle": idle,
    "slow": slow,
}
