"""``throughput``: the highest publish rate one server process sustains, game-shaped.

GameSync (one gateway on Redis) next to the bare-subscriber floor
(``gamesync.bench.floorserver``: uvloop + hiredis, one pre-built frame written to each local
socket of the game) in the same invocation, the runs alternating between the two. Each system has
its own redis-server, publisher (the package's Lua script by EVALSHA, from a separate process)
and load clients: C clients over G games, so C/G local watchers per game (4 by default).

A run steps the publish rate up from ``--rate`` by 1.5x while a window of ``--seconds`` passes,
then bisects twice between the last rate that passed and the first that failed. A window passes
when the publisher kept up (≥ 95 % of the rate), nothing was lost, skipped, duplicated or
reordered, and the clients' p99 was at most 50 ms; a failed window is tried once more before
its rate counts as failed (on a shared machine a neighbour's burst can fail one window). A run's
result is its highest passing rate; the summary takes the median over runs, and the ratio
GameSync / floor of those medians.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import time
from typing import Any

from gamesync.bench.accounting import INVARIANTS
from gamesync.bench.procs import CPU_CLOCK_S
from gamesync.bench.profile import summarize
from gamesync.bench.results import Target, median
from gamesync.bench.rig import Rig, Server
from gamesync.bench.scenarios import push
from gamesync.bench.scenarios.contract import Context, Measurement, Scenario
from gamesync.bench.scenarios.steps import connect

__all__ = ["P99_MS", "SCENARIO", "cost_ratio", "verdict"]

#: A window fails above this p99 (ms), publish to client.
P99_MS = 50.0
#: The publisher must achieve this share of the asked rate, or the load side is the limit.
KEPT_UP = 0.95
STEP = 1.5
#: Bounds every climb: at most this many 1.5x steps above the starting rate.
MAX_STEPS = 12
BISECTIONS = 2
#: After a failed window the server may still drain a backlog; the next starts once it is quiet.
QUIET_CPU_SHARE = 0.2
QUIET_DEADLINE = 20.0
GOAL = 0.5


def verdict(row: dict[str, Any], rate: float) -> str | None:
    """Why a window at ``rate`` failed (None: it passed)."""
    if row["publish_rate"] < KEPT_UP * rate:
        return "load side"  # the publisher (or Redis) could not keep up: not the server's limit
    if any(row[k] for k in INVARIANTS) or row["skipped"]:
        return "lost"
    if row["latency_ms"]["p99"] > P99_MS:
        return "p99"
    return None


async def _setup(ctx: Context, rig: Rig, system: str) -> push.PushSetup:
    opts = ctx.opts
    port, redis = await rig.redis()
    if system == "floor":
        server = await rig.floor(opts.size, port)
        kind = "raw"
    else:
        server = await rig.gateway(f"redis://127.0.0.1:{port}/0")
        kind = "gamesync"
    group = await rig.clients(kind, [server], opts.clients, opts.games)
    connected = await connect(ctx, group, f"{system}: connecting {opts.clients}")
    target = {"kind": "redis", "host": "127.0.0.1", "port": port}
    publisher = await rig.publisher([target], opts.games, opts.size)
    return push.PushSetup([server], group, publisher, redis, connected)


async def _quiet(server: Server) -> None:
    """Wait (bounded) until the server uses under a fifth of its core: its backlog is gone."""
    deadline = time.monotonic() + QUIET_DEADLINE
    while time.monotonic() < deadline:
        before = server.proc.cpu()
        await asyncio.sleep(0.5)
        if server.proc.cpu() - before < QUIET_CPU_SHARE * 0.5:
            return


class Climb:
    """One run of one system: its windows, the versions published so far, its best rate."""

    def __init__(self, ctx: Context, system: str, setup: push.PushSetup, run: int) -> None:
        self.ctx = ctx
        self.system = system
        self.setup = setup
        self.run = run
        self.rows: list[dict[str, Any]] = []
        self.passed = 0.0
        self.failed: float | None = None
        self.reason: str | None = None

    async def window(self, rate: float, versions: dict[int, int]) -> dict[int, int]:
        """One window at ``rate``; a failure is tried once more (a shared machine's hiccup
        should not end a climb), and the rate fails only if the retry fails too."""
        versions, reason = await self._once(rate, versions, retry=False)
        if reason is not None:
            versions, reason = await self._once(rate, versions, retry=True)
        if reason is None:
            self.passed = max(self.passed, rate)
        elif self.failed is None or rate < self.failed:
            self.failed, self.reason = rate, reason
        return versions

    async def _once(
        self, rate: float, versions: dict[int, int], *, retry: bool
    ) -> tuple[dict[int, int], str | None]:
        opts = self.ctx.opts
        row, _, _ = await push.window(
            self.ctx, self.setup, rate=rate, seconds=opts.seconds, versions=versions
        )
        last: dict[int, int] = row.pop("last")
        reason = verdict(row, rate)
        published = max(1, row["published"])
        row.update(
            system=self.system,
            run=self.run,
            rate=round(rate, 1),
            passed=reason is None,
            reason=reason,
            retry=retry,
            clients=opts.clients,
            games=opts.games,
            connected=self.setup.connected["connected"],
            server_us_per_publish=per_unit_us(row["server_cpu_s"], published, 1),
            server_us_per_delivery=per_unit_us(row["server_cpu_s"], max(1, row["delivered"]), 2),
            redis_us_per_publish=round(
                row["redis_cpu_pct"] / 100 * row["window_secs"] / published * 1e6, 1
            ),
        )
        self.rows.append(row)
        lat = row["latency_ms"]
        self.ctx.display.note(
            f"throughput {self.system} run {self.run}: {rate:,.0f}/s{' (retry)' if retry else ''} "
            f"{'passed' if reason is None else 'FAILED (' + reason + ')'}: achieved "
            f"{row['publish_rate']:,.0f}/s, p99 {lat['p99']:.1f} ms, lost {row['lost']} skipped "
            f"{row['skipped']}, server CPU {row['server_cpu_pct']} % "
            f"({row['server_us_per_publish']} us/publish)"
        )
        if reason is not None:
            await _quiet(self.setup.servers[0])
        return last, reason

    async def climb(self, versions: dict[int, int]) -> dict[int, int]:
        """Step up until a window fails, then bisect between the last pass and that failure."""
        start, cap = self.ctx.opts.rate, self.ctx.opts.max_rate
        rate = start
        for _ in range(MAX_STEPS + 1):
            versions = await self.window(rate, versions)
            if self.failed is not None or (cap and rate * STEP > cap):
                break
            rate *= STEP
        if not self.passed:  # even the starting rate failed: step down to find a passing one
            rate = start
            for _ in range(3):
                rate /= 2
                versions = await self.window(rate, versions)
                if self.passed:
                    break
        for _ in range(BISECTIONS):
            if not self.passed or self.failed is None:
                break
            versions = await self.window(math.sqrt(self.passed * self.failed), versions)
        return versions

    def best(self) -> dict[str, Any]:
        """The run's result: its highest passing rate and that window's costs."""
        rows = [r for r in self.rows if r["passed"] and r["rate"] == round(self.passed, 1)]
        at_max = rows[-1] if rows else {}
        return {
            "system": self.system,
            "run": self.run,
            "max_rate": round(self.passed, 1),
            "first_failure": self.failed and round(self.failed, 1),
            "failed_by": self.reason,
            "server_cpu_pct": at_max.get("server_cpu_pct"),
            "server_us_per_publish": at_max.get("server_us_per_publish"),
            "redis_us_per_publish": at_max.get("redis_us_per_publish"),
            "p99_ms": at_max.get("latency_ms", {}).get("p99"),
        }


async def run(ctx: Context) -> Measurement:
    """Both systems set up side by side, then ``runs`` climbs of each, alternating."""
    opts = ctx.opts
    systems = opts.systems or ["gamesync", "floor"]
    creds = ctx.credentials(opts.clients) if "gamesync" in systems else None
    rows: list[dict[str, Any]] = []
    bests: list[dict[str, Any]] = []
    profiles: dict[str, Any] = {}
    async with contextlib.AsyncExitStack() as stack:
        setups: dict[str, push.PushSetup] = {}
        for system in systems:
            rig = await stack.enter_async_context(Rig(opts.workdir, creds))
            setups[system] = await _setup(ctx, rig, system)
        versions = {s: {g: 0 for g in range(1, opts.games + 1)} for s in systems}
        for system in systems:  # first-use costs (imports, caches, buffers) stay out of runs
            row, _, _ = await push.window(
                ctx, setups[system], rate=opts.rate, seconds=1.0, versions=versions[system]
            )
            versions[system] = row.pop("last")
        for r in range(1, opts.runs + 1):
            for system in systems:
                climb = Climb(ctx, system, setups[system], r)
                versions[system] = await climb.climb(versions[system])
                rows += climb.rows
                bests.append(climb.best())
                if opts.profile > 0 and r == 1 and climb.passed:
                    versions[system], profiles[system] = await _profile(
                        ctx, setups[system], climb.passed, versions[system], system
                    )
    summary: dict[str, Any] = {}
    for system in systems:
        mine = [b for b in bests if b["system"] == system]
        first = [r for r in rows if r["system"] == system and r["rate"] == round(opts.rate, 1)]
        summary[system] = {
            "max_rate": median([b["max_rate"] for b in mine]),
            "max_rate_runs": [b["max_rate"] for b in mine],
            "failed_by": [b["failed_by"] for b in mine],
            "server_us_per_publish_at_max": median(
                [b["server_us_per_publish"] for b in mine if b["server_us_per_publish"]]
            ),
            f"server_us_per_publish_at_{opts.rate:.0f}": median(
                [r["server_us_per_publish"] for r in first if r["server_us_per_publish"]]
            ),
            f"server_us_per_delivery_at_{opts.rate:.0f}": median(
                [r["server_us_per_delivery"] for r in first if r["server_us_per_delivery"]]
            ),
            f"redis_us_per_publish_at_{opts.rate:.0f}": median(
                [r["redis_us_per_publish"] for r in first]
            ),
        }
    summary["climbs"] = bests
    if profiles:
        summary["profiles"] = profiles
    targets: list[Target] = []
    if "gamesync" in summary and "floor" in summary:
        gs, floor = summary["gamesync"], summary["floor"]
        ratio = gs["max_rate"] / floor["max_rate"] if floor["max_rate"] else 0.0
        summary["ratio"] = round(ratio, 3)
        cpu_ratio = cost_ratio(rows)
        summary["cpu_ratio"] = cpu_ratio
        # The floor's server CPU at its best rate: well under a core means the load side (one
        # core for clients, Redis and the publisher) stopped the climb, not the floor.
        floor_cpu = median([b["server_cpu_pct"] or 0.0 for b in bests if b["system"] == "floor"])
        summary["floor_server_cpu_pct_at_max"] = floor_cpu
        bound = "" if floor_cpu >= 90 else f"; floor at {floor_cpu:.0f} % CPU: load-bound"
        targets.append(
            Target(
                "throughput, GameSync / bare-subscriber floor",
                f"≥ {GOAL}x the floor's publishes/s (p99 ≤ {P99_MS:.0f} ms, 0 lost)",
                f"{ratio:.2f}x ({gs['max_rate']:,.0f} vs {floor['max_rate']:,.0f}/s{bound})",
                ratio >= GOAL,
            )
        )
        targets.append(
            Target(
                "throughput per server CPU-second, GameSync / floor",
                f"≥ {GOAL}x the floor's publishes per CPU-second, at the same rates",
                f"{cpu_ratio:.2f}x" if cpu_ratio else "no common passing rate",
                cpu_ratio >= GOAL,
            )
        )
    passed = [r for r in rows if r["passed"]]
    targets.append(push.lossless("throughput: passing windows lose nothing", passed))
    params = {
        "clients": opts.clients,
        "games": opts.games,
        "watchers_per_game": opts.clients / max(1, opts.games),
        "start_rate": opts.rate,
        "max_rate": opts.max_rate or None,
        "step": STEP,
        "bisections": BISECTIONS,
        "seconds": opts.seconds,
        "runs": opts.runs,
        "size": opts.size,
        "p99_ms": P99_MS,
        "systems": systems,
    }
    # Failed windows may lose by design (that is how the limit is found): the result's
    # invariants count the passing windows only.
    for row in rows:
        if not row["passed"]:
            for key in INVARIANTS:
                row[f"failed_{key}"] = row.pop(key)
    return Measurement(params, rows, summary, targets)


#: A window's CPU below this many clock ticks says nothing per unit (one tick more or less is
#: a large part of it): its per-publish and per-delivery figures are None.
MIN_TICKS = 5


def per_unit_us(cpu_s: float, units: int, digits: int) -> float | None:
    """CPU microseconds per unit, or None when `cpu_s` is below what the kernel's clock resolves."""
    if cpu_s < MIN_TICKS * CPU_CLOCK_S:
        return None
    return round(cpu_s / units * 1e6, digits)


def cost_ratio(rows: list[dict[str, Any]]) -> float:
    """Floor's server CPU per publish over GameSync's, median over the (run, rate) windows that
    passed for both: the same-rate efficiency ratio, whatever stopped either climb."""
    cost: dict[tuple[int, float, str], float] = {
        (r["run"], r["rate"], r["system"]): r["server_us_per_publish"]
        for r in rows
        if r["passed"] and r["server_us_per_publish"]
    }
    ratios = [
        cost[(run, rate, "floor")] / us
        for (run, rate, system), us in cost.items()
        if system == "gamesync" and (run, rate, "floor") in cost
    ]
    return round(median(ratios), 3) if ratios else 0.0


async def _profile(
    ctx: Context, setup: push.PushSetup, rate: float, versions: dict[int, int], system: str
) -> tuple[dict[int, int], dict[str, Any] | None]:
    """One extra window at ``rate`` under py-spy (not counted): where the server's time goes."""
    out = ctx.opts.workdir / f"profile-throughput-{system}-{rate:.0f}.txt"
    row, _, _ = await push.window(
        ctx, setup, rate=rate, seconds=ctx.opts.seconds, versions=versions, profile_to=out
    )
    return row.pop("last"), (summarize(out) if out.exists() else None)


SCENARIO = Scenario(
    name="throughput",
    run=run,
    defaults={"clients": 5000, "games": 1250, "rate": 2000.0, "seconds": 5.0, "runs": 3},
    columns=(
        "system",
        "run",
        "rate",
        "publish_rate",
        "passed",
        "reason",
        "retry",
        "delivered",
        "lost",
        "skipped",
        "latency_ms.p50",
        "latency_ms.p99",
        "latency_ms.p999",
        "server_cpu_pct",
        "server_us_per_publish",
        "server_us_per_delivery",
        "redis_cpu_pct",
        "redis_us_per_publish",
        "client_cpu_pct",
        "publisher_cpu_pct",
        "loadavg_1m",
    ),
)
