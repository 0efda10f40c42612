"""``affinity``: per-gateway CPU with spread vs game-affine placement (issue 14.4).

N gateway processes (started as shards 0..N-1 of N) on one redis-server, one publisher at a
fixed total rate, C clients over G games. With **spread** placement each game's watchers are on
every gateway (``/ws/games/{id}``, as any load balancer ends up placing them), so every gateway
subscribes to every game and receives every publish. With **affine** placement each game's
watchers are on the game's shard (``/ws/s/{shard}/games/{id}``, as the operator's per-shard
route sends them), so a gateway receives only its own games' publishes. The deliveries are the
same in both; what changes is the publishes each process receives.

Each run connects the clients spread, publishes one window, disconnects them and waits until
the gateways dropped every game; then the same for affine. Runs alternate the two placements so
that a neighbour's load falls on both alike; the summary takes medians over runs.
"""

from __future__ import annotations

import asyncio
import os
import time
from typing import Any

import httpx

from gamesync.bench.accounting import INVARIANTS
from gamesync.bench.procs import Proc
from gamesync.bench.results import Target, median
from gamesync.bench.rig import Rig, Server
from gamesync.bench.scenarios import push
from gamesync.bench.scenarios.contract import Context, Measurement, Scenario
from gamesync.bench.scenarios.steps import connect

__all__ = ["GOAL", "PLACEMENTS", "SCENARIO"]

PLACEMENTS = ("spread", "affine")
#: Issue 14.4: per-process gateway CPU with affinity about a quarter of spread's at 4 gateways;
#: "about": at most this share of the spread figure.
GOAL = 0.35
#: After the clients of a placement left, the gateways drop their games within the unsubscribe
#: linger (2 s by default); the next placement starts once every one of them holds none.
DRAINED_DEADLINE = 20.0


async def _games_held(servers: list[Server]) -> int:
    """The games the gateways are subscribed to, summed (their `/v1/stats`)."""
    total = 0
    async with httpx.AsyncClient(timeout=5) as http:
        for server in servers:
            answer = await http.get(f"http://127.0.0.1:{server.internal_port}/v1/stats")
            total += int(answer.json()["games"])
    return total


async def _until_drained(servers: list[Server]) -> None:
    deadline = time.monotonic() + DRAINED_DEADLINE
    while await _games_held(servers):
        if time.monotonic() > deadline:
            raise TimeoutError("the gateways still hold games after their clients left")
        await asyncio.sleep(0.2)


async def _window(
    ctx: Context,
    rig: Rig,
    servers: list[Server],
    load: tuple[Proc, Proc],
    placement: str,
    run: int,
    versions: dict[int, int],
) -> tuple[dict[str, Any], dict[int, int]]:
    """Connect the clients with ``placement``, publish one window, disconnect them."""
    opts = ctx.opts
    group = await rig.clients("gamesync", servers, opts.clients, opts.games, placement=placement)
    connected = await connect(ctx, group, f"{placement}: connecting {opts.clients}")
    held = await _games_held(servers)
    publisher, redis = load
    setup = push.PushSetup(servers, group, publisher, redis, connected)
    row, _, _ = await push.window(
        ctx, setup, rate=opts.rate, seconds=opts.seconds, versions=versions
    )
    last: dict[int, int] = row.pop("last")
    for proc in group.procs:
        await rig.stop(proc)
    await _until_drained(servers)
    each = row["server_cpu_pct_each"]
    published = max(1, row["published"])
    row.update(
        placement=placement,
        run=run,
        connected=connected["connected"],
        games_held=held,
        gateway_cpu_pct_mean=round(sum(each) / len(each), 1),
        gateway_cpu_pct_max=max(each),
        gateway_us_per_publish=round(row["server_cpu_s"] / published * 1e6, 1),
    )
    ctx.display.note(
        f"affinity {placement} run {run}: {row['publish_rate']:,.0f}/s, gateways hold {held} "
        f"game subscriptions, CPU per gateway {each} % (mean {row['gateway_cpu_pct_mean']}), "
        f"redis {row['redis_cpu_pct']} %, p99 {row['latency_ms']['p99']:.1f} ms, "
        f"lost {row['lost']}"
    )
    return row, last


async def run(ctx: Context) -> Measurement:
    """``runs`` rounds of (spread, affine) windows against the same N shard gateways."""
    opts = ctx.opts
    loadavg_start = [round(x, 2) for x in os.getloadavg()]
    n = opts.gateways
    creds = ctx.credentials(opts.clients)
    rows: list[dict[str, Any]] = []
    async with Rig(opts.workdir, creds) as rig:
        port, redis = await rig.redis()
        broker = f"redis://127.0.0.1:{port}/0"
        servers = [
            await rig.gateway(broker, ["--shard", str(i), "--shards", str(n)]) for i in range(n)
        ]
        target = {"kind": "redis", "host": "127.0.0.1", "port": port}
        publisher = await rig.publisher([target], opts.games, opts.size)
        versions = {g: 0 for g in range(1, opts.games + 1)}
        for r in range(1, opts.runs + 1):
            for placement in PLACEMENTS:
                row, versions = await _window(
                    ctx, rig, servers, (publisher, redis), placement, r, versions
                )
                rows.append(row)
    summary: dict[str, Any] = {}
    for placement in PLACEMENTS:
        mine = [r for r in rows if r["placement"] == placement]
        summary[placement] = {
            "gateway_cpu_pct_mean": median([r["gateway_cpu_pct_mean"] for r in mine]),
            "gateway_cpu_pct_max": median([r["gateway_cpu_pct_max"] for r in mine]),
            "gateway_us_per_publish": median([r["gateway_us_per_publish"] for r in mine]),
            "redis_cpu_pct": median([r["redis_cpu_pct"] for r in mine]),
            "games_held": median([r["games_held"] for r in mine]),
            "p99_ms": median([r["latency_ms"]["p99"] for r in mine]),
            "publish_rate": median([r["publish_rate"] for r in mine]),
        }
    spread, affine = summary["spread"], summary["affine"]
    ratio = affine["gateway_cpu_pct_mean"] / max(1e-6, spread["gateway_cpu_pct_mean"])
    summary["ratio_cpu_per_gateway"] = round(ratio, 3)
    summary["ratio_games_held"] = round(affine["games_held"] / max(1.0, spread["games_held"]), 3)
    targets = [
        Target(
            f"affinity: CPU per gateway, affine / spread ({n} gateways, {opts.rate:,.0f}/s)",
            f"≈ 1/{n} (≤ {GOAL}x)",
            f"{ratio:.2f}x ({affine['gateway_cpu_pct_mean']} vs "
            f"{spread['gateway_cpu_pct_mean']} % of a core)",
            ratio <= GOAL,
        ),
        Target(
            "affinity: every window loses nothing",
            "0 lost, skipped, duplicated, reordered",
            f"{sum(r['delivered'] for r in rows):,} deliveries in {len(rows)} windows",
            all(not any(r[k] for k in (*INVARIANTS, "skipped")) for r in rows),
        ),
    ]
    params = {
        **push.params(opts),
        "placement": list(PLACEMENTS),
        "watchers_per_game": opts.clients / max(1, opts.games),
        "loadavg_at_start": loadavg_start,
    }
    return Measurement(params, rows, summary, targets)


SCENARIO = Scenario(
    name="affinity",
    run=run,
    defaults={
        "clients": 2000,
        "games": 500,
        "rate": 1000.0,
        "seconds": 10.0,
        "gateways": 4,
        "runs": 3,
    },
    columns=(
        "placement",
        "run",
        "connected",
        "games_held",
        "publish_rate",
        "delivered",
        "lost",
        "skipped",
        "latency_ms.p50",
        "latency_ms.p99",
        "server_cpu_pct_each",
        "gateway_cpu_pct_mean",
        "gateway_us_per_publish",
        "redis_cpu_pct",
        "client_cpu_pct",
        "loadavg_1m",
    ),
)
