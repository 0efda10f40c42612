"""``affinity``: per-gateway CPU with spread vs game-affine placement (issue 14.4).

N gateway processes (started as shards 0..N-1 of N) on one redis-server, one publisher at a
fixed total rate, C clients over G games. With **spread** placement each game's watchers are on
every gateway (``/ws/games/{id}``, as any load balancer ends up placing them), so every gateway
subscribes to every game and receives every publish. With **affine** placement each game's
watchers are on the game's shard (``/ws/s/{shard}/games/{id}``, as the operator's per-shard
route sends them), so a gateway receives only its own games' publishes. The deliveries are the
same in both; what changes is the publishes each process receives.

Each run connects the clients spread, measures the gateways idle for a window (connected, no
publishes), publishes one window, disconnects them and waits until the gateways dropped every
game; then the same for affine. Runs alternate the two placements so that a neighbour's load
falls on both alike; the summary takes medians over runs. Besides each gateway's CPU, a window
records the envelopes each gateway received from Redis (its `gamesync_broker_received_total`):
the per-pod publish load itself, and the time each spent on the broker's receive path (its
`gamesync_broker_receive_seconds_total`: the pub/sub read callback less the fan-outs' writes,
issue 14.4's "per-process broker CPU", measured directly). From the two placements'
publish-driven CPU (above idle) the summary also solves the two unit costs of a gateway: CPU per
envelope received (the Redis read path, envelope handling, frame building, the wake-up) and per
delivery (the socket write).

The rig pins every server to one CPU, so the N gateways share a core: between two wake-ups of
one gateway the others run, and the fewer envelopes a gateway gets, the colder each finds its
caches. ``--one-pod`` measures one pod of the fleet with a core of its own instead: only shard
0's gateway runs, with exactly the clients each placement gives it, while the publisher still
publishes every game of the fleet at the full rate (a spread pod receives them all, an affine
one its shard's).
"""

from __future__ import annotations

import asyncio
import os
import re
import time
from typing import Any

import httpx

from gamesync.bench.procs import Proc
from gamesync.bench.results import Target, median
from gamesync.bench.rig import Rig, Server
from gamesync.bench.scenarios import push
from gamesync.bench.scenarios.contract import Context, Measurement, Scenario
from gamesync.bench.scenarios.steps import connect, pct

__all__ = ["BROKER_SLACK", "GOAL", "PLACEMENTS", "SCENARIO", "unit_costs"]

PLACEMENTS = ("spread", "affine")
#: Issue 14.4: per-process gateway CPU with affinity about a quarter of spread's at 4 gateways;
#: "about": at most this share of the spread figure.
GOAL = 0.35
#: The broker's receive time per process, affine / spread: "about 1/N" is within a fifth of it.
BROKER_SLACK = 1.2
#: After the clients of a placement left, the gateways drop their games within the unsubscribe
#: linger (2 s by default); the next placement starts once every one of them holds none.
DRAINED_DEADLINE = 20.0
#: The broker's counters a window reads from each gateway: envelopes received, the receive
#: path's seconds, and the pub/sub socket reads that carried them.
_COUNTERS = [
    re.compile(rf"^gamesync_broker_{name}_total ([0-9.e+-]+)$", re.M)
    for name in ("received", "receive_seconds", "reads")
]


async def _received(servers: list[Server]) -> list[list[float]]:
    """[envelopes received, seconds on the receive path, reads] of each gateway so far."""
    out = []
    async with httpx.AsyncClient(timeout=5) as http:
        for server in servers:
            text = (await http.get(f"http://127.0.0.1:{server.internal_port}/metrics")).text
            found = [pattern.search(text) for pattern in _COUNTERS]
            out.append([float(m.group(1)) if m else 0.0 for m in found])
    return out


async def _idle_cpu(servers: list[Server], seconds: float) -> list[float]:
    """Each gateway's CPU (% of a core) over ``seconds`` with its clients connected, no publish."""
    before = [s.proc.cpu() for s in servers]
    started = time.monotonic()
    await asyncio.sleep(seconds)
    secs = time.monotonic() - started
    return [pct(s.proc.cpu() - b, secs) for s, b in zip(servers, before, strict=True)]


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
    """Connect the clients with ``placement``, measure idle, publish one window, disconnect."""
    opts = ctx.opts
    group = await rig.clients(
        "gamesync",
        servers,
        opts.clients,
        opts.games,
        placement=placement,
        fleet=opts.gateways,
        only=0 if opts.one_pod else None,
    )
    connected = await connect(ctx, group, f"{placement}: connecting {opts.clients}")
    held = await _games_held(servers)
    idle = await _idle_cpu(servers, opts.seconds)
    publisher, redis = load
    setup = push.PushSetup(servers, group, publisher, redis, connected)
    received0 = await _received(servers)
    row, _, _ = await push.window(
        ctx, setup, rate=opts.rate, seconds=opts.seconds, versions=versions
    )
    deltas = [
        [after - before for before, after in zip(a, b, strict=True)]
        for a, b in zip(received0, await _received(servers), strict=True)
    ]
    received, broker_s, reads = ([d[i] for d in deltas] for i in range(3))
    last: dict[int, int] = row.pop("last")
    for proc in group.procs:
        await rig.stop(proc)
    await _until_drained(servers)
    each = row["server_cpu_pct_each"]
    secs = row["window_secs"]
    published = max(1, row["published"])
    busy = [round(c - i, 1) for c, i in zip(each, idle, strict=True)]
    row.update(
        placement=placement,
        run=run,
        connected=connected["connected"],
        games_held=held,
        received_each=[int(r) for r in received],
        received_per_s_mean=round(sum(received) / len(received) / secs, 1),
        # the broker's receive path, per gateway: % of a core over the window
        broker_cpu_pct_each=[round(100 * b / secs, 2) for b in broker_s],
        broker_cpu_pct_mean=round(100 * sum(broker_s) / len(broker_s) / secs, 3),
        broker_us_per_received=round(1e6 * sum(broker_s) / max(1.0, sum(received)), 1),
        envelopes_per_read=round(sum(received) / max(1.0, sum(reads)), 2),
        idle_cpu_pct_each=idle,
        gateway_cpu_pct_mean=round(sum(each) / len(each), 2),
        gateway_cpu_pct_max=max(each),
        publish_cpu_pct_mean=round(sum(busy) / len(busy), 2),
        gateway_us_per_publish=round(row["server_cpu_s"] / published * 1e6, 1),
        # the publish-driven CPU-seconds of all gateways (above idle), for the unit costs
        publish_cpu_s=round(sum(busy) / 100 * secs, 4),
        received_total=int(sum(received)),
    )
    ctx.display.note(
        f"affinity {placement} run {run}: {row['publish_rate']:,.0f}/s, gateways hold {held} "
        f"games, receive {row['received_per_s_mean']:,.0f}/s each, broker receive path "
        f"{row['broker_cpu_pct_each']} % of a core, CPU per gateway {each} % "
        f"(idle {idle}), redis {row['redis_cpu_pct']} %, p99 "
        f"{row['latency_ms']['p99']:.1f} ms, lost {row['lost']}"
    )
    return row, last


async def run(ctx: Context) -> Measurement:
    """``runs`` rounds of (spread, affine) windows against the same N shard gateways."""
    opts = ctx.opts
    loadavg_start = [round(x, 2) for x in os.getloadavg()]
    n = opts.gateways
    alone = (" one pod alone" if opts.one_pod else "") + (
        ", core kept awake" if opts.keep_awake else ""
    )
    creds = ctx.credentials(opts.clients)
    rows: list[dict[str, Any]] = []
    async with Rig(opts.workdir, creds) as rig:
        port, redis = await rig.redis()
        broker = f"redis://127.0.0.1:{port}/0"
        servers = [
            await rig.gateway(broker, ["--shard", str(i), "--shards", str(n)])
            for i in range(1 if opts.one_pod else n)
        ]
        if opts.keep_awake and await rig.keep_awake() is None:
            ctx.display.note("[yellow]--keep-awake: servers are not pinned; nothing to keep awake")
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
            "received_per_s_per_gateway": median([r["received_per_s_mean"] for r in mine]),
            "broker_cpu_pct_mean": median([r["broker_cpu_pct_mean"] for r in mine]),
            "broker_us_per_received": median([r["broker_us_per_received"] for r in mine]),
            "envelopes_per_read": median([r["envelopes_per_read"] for r in mine]),
            "idle_cpu_pct_mean": median(
                [sum(r["idle_cpu_pct_each"]) / len(r["idle_cpu_pct_each"]) for r in mine]
            ),
            "publish_cpu_pct_mean": median([r["publish_cpu_pct_mean"] for r in mine]),
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
    received = affine["received_per_s_per_gateway"] / max(
        1e-6, spread["received_per_s_per_gateway"]
    )
    broker = affine["broker_cpu_pct_mean"] / max(1e-6, spread["broker_cpu_pct_mean"])
    summary["ratio_broker_cpu_per_gateway"] = round(broker, 3)
    summary["ratio_cpu_per_gateway"] = round(ratio, 3)
    summary["ratio_publish_cpu_per_gateway"] = round(
        affine["publish_cpu_pct_mean"] / max(1e-6, spread["publish_cpu_pct_mean"]), 3
    )
    summary["ratio_received_per_gateway"] = round(received, 3)
    summary["ratio_games_held"] = round(affine["games_held"] / max(1.0, spread["games_held"]), 3)
    summary["unit_costs"] = unit_costs(rows)
    targets = [
        Target(
            f"affinity: envelopes each gateway receives, affine / spread ({n} gateways{alone})",
            f"1/{n}",
            f"{received:.3f}x ({affine['received_per_s_per_gateway']:,.0f} vs "
            f"{spread['received_per_s_per_gateway']:,.0f}/s)",
            received <= 1.05 / n,
        ),
        Target(
            f"affinity: broker receive-path CPU per gateway, affine / spread ({n} gateways{alone})",
            f"≈ 1/{n} (≤ {BROKER_SLACK / n:.2f}x)",
            f"{broker:.3f}x ({affine['broker_cpu_pct_mean']:.2f} vs "
            f"{spread['broker_cpu_pct_mean']:.2f} % of a core; "
            f"{affine['broker_us_per_received']:.1f} vs {spread['broker_us_per_received']:.1f} "
            "µs per envelope)",
            broker <= BROKER_SLACK / n,
        ),
        Target(
            f"affinity: CPU per gateway, affine / spread ({n} gateways{alone}, {opts.rate:,.0f}/s)",
            f"≈ 1/{n} (≤ {GOAL}x)",
            f"{ratio:.2f}x ({affine['gateway_cpu_pct_mean']} vs "
            f"{spread['gateway_cpu_pct_mean']} % of a core)",
            ratio <= GOAL,
        ),
        push.lossless("affinity: every window loses nothing", rows),
    ]
    params = {
        **push.params(opts),
        "placement": list(PLACEMENTS),
        "watchers_per_game": opts.clients / max(1, opts.games),
        "one_pod": opts.one_pod,
        "keep_awake": opts.keep_awake,
        "loadavg_at_start": loadavg_start,
    }
    return Measurement(params, rows, summary, targets)


def unit_costs(rows: list[dict[str, Any]]) -> dict[str, float]:
    """A gateway's CPU per envelope received and per delivery (µs), medians over runs.

    Each run's two windows give two equations in the same two unknowns, the publish-driven CPU
    of all gateways = received * per_received + delivered * per_delivery: spread receives N
    times what affine does, and both deliver the same.
    """
    per_received, per_delivery = [], []
    for run in sorted({r["run"] for r in rows}):
        both = {r["placement"]: r for r in rows if r["run"] == run}
        if set(both) != set(PLACEMENTS):
            continue
        s, a = both["spread"], both["affine"]
        extra = s["received_total"] - a["received_total"]
        if extra <= 0 or a["delivered"] <= 0:
            continue
        received_cost = (s["publish_cpu_s"] - a["publish_cpu_s"]) / extra
        per_received.append(received_cost * 1e6)
        delivery_cost = (a["publish_cpu_s"] - a["received_total"] * received_cost) / a["delivered"]
        per_delivery.append(delivery_cost * 1e6)
    return {
        "us_per_received": round(median(per_received), 1),
        "us_per_delivery": round(median(per_delivery), 1),
    }


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
        "received_per_s_mean",
        "broker_cpu_pct_mean",
        "broker_us_per_received",
        "envelopes_per_read",
        "publish_rate",
        "delivered",
        "lost",
        "skipped",
        "latency_ms.p50",
        "latency_ms.p99",
        "server_cpu_pct_each",
        "idle_cpu_pct_each",
        "gateway_cpu_pct_mean",
        "publish_cpu_pct_mean",
        "gateway_us_per_publish",
        "redis_cpu_pct",
        "client_cpu_pct",
        "loadavg_1m",
    ),
)
