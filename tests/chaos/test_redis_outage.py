"""Redis SIGKILLed for 5 s under publishing, then back (issue 12, "The project proves it").

Required: 0 client reconnects, 0 stale clients, every client at its game's newest version
≤ 2 s after Redis returns, readiness false only during the outage.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass

import httpx
import pytest

from chaos.feed import Feed
from chaos.figures import record
from chaos.processes import GatewayLauncher, GatewayProcess
from chaos.scale import sizes
from chaos.swarm import Policy, Swarm, loopback_sources, percentile
from redis_servers import RedisServer

pytestmark = pytest.mark.redis

OUTAGE_SECONDS = 5.0
#: every client at its game's newest version this soon after Redis answers again
CONVERGE_SECONDS = 2.0


@dataclass(frozen=True)
class Size:
    gateways: int
    clients: int
    games: int
    rate: float  # commits a second, all games together


CI = Size(gateways=2, clients=300, games=20, rate=100)
LARGE = Size(gateways=2, clients=4000, games=200, rate=400)


class Readiness:
    """Polls every gateway's /readyz (every 50 ms) and keeps each answer with its loop time."""

    def __init__(self, gateways: list[GatewayProcess]) -> None:
        self.gateways = gateways
        self.samples: list[tuple[float, str, bool]] = []
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run())

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        async with httpx.AsyncClient() as client:
            while True:
                for gateway in self.gateways:
                    try:
                        ready = await gateway.readyz(client)
                    except httpx.HTTPError:
                        ready = False
                    self.samples.append((loop.time(), gateway.name, ready))
                await asyncio.sleep(0.05)  # the sampling period

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)

    def unready(self) -> list[tuple[float, str]]:
        return [(at, name) for at, name, ready in self.samples if not ready]


@pytest.mark.parametrize("size", sizes(CI, LARGE))
async def test_redis_killed_for_5s_under_publishing_costs_no_client_anything(
    size: Size,
    redis_server: RedisServer,
    launch_gateways: GatewayLauncher,
    tokens: Callable[[int], str],
) -> None:
    gateways = launch_gateways(size.gateways, "--broker", redis_server.url, "--authz", "open")
    games = list(range(1, size.games + 1))
    feed = Feed(redis_server.url, games, size.rate)
    swarm = Swarm(
        [(g.host, g.port) for g in gateways],
        policy=Policy(reconnect=True),
        sources=loopback_sources(size.clients // 40 + 1),  # clients of many hosts
    )
    readiness = Readiness(gateways)
    loop = asyncio.get_running_loop()
    try:
        for game in games:  # every game has a state before anyone subscribes
            feed.commit(game)
        assert await feed.flush(10)
        clients = swarm.add(size.clients, games, tokens)
        await swarm.connect(clients)
        await swarm.until("every client subscribed", lambda: swarm.subscribed() == len(clients), 30)
        feed.start()
        readiness.start()
        await swarm.until("a first round of updates", lambda: not swarm.behind(feed.committed), 20)
        steady_from = loop.time()
        # From here on nothing may close: what happened while connecting (a per-address cap
        # turning a few away for a moment) is not the outage's doing.
        reconnects_before, closes_before = swarm.reconnects, sum(swarm.close_codes.values())
        await asyncio.sleep(2.0)  # the scenario's steady phase: two seconds of traffic

        killed_at = loop.time()
        redis_server.kill()
        await asyncio.sleep(OUTAGE_SECONDS)  # the outage itself
        redis_server.start()  # returns once Redis answers PING
        back_at = loop.time()
        newest_at_return = dict(feed.committed)
        published = feed.publisher.stats.published
        first_publish = asyncio.ensure_future(
            swarm.until(
                "the publisher's first publish after the outage",
                lambda: feed.publisher.stats.published > published,
                30,
            )
        )
        converged = await swarm.until(
            "every client at its game's newest version after the outage",
            lambda: not swarm.behind(newest_at_return),
            30,
        )
        republished = await first_publish
        await asyncio.sleep(1.0)  # one more second of traffic after the recovery
        await feed.stop()
        assert await feed.flush(10)
        await swarm.until("the final versions", lambda: not swarm.behind(feed.committed), 10)
        stale = swarm.behind(feed.committed)
        await asyncio.sleep(0.2)  # let the last readiness samples in
        await readiness.stop()
    finally:
        await readiness.stop()
        await swarm.close()
        await feed.aclose()

    unready = readiness.unready()
    not_ready_outside = [
        (round(at - killed_at, 2), name)
        for at, name in unready
        if not killed_at <= at <= back_at + CONVERGE_SECONDS
    ]
    unready_names = {name for _, name in unready}
    steady = swarm.latencies(steady_from, killed_at)
    figures = {
        "gateways": size.gateways,
        "clients": size.clients,
        "games": size.games,
        "commits_per_second": size.rate,
        "outage_seconds": OUTAGE_SECONDS,
        "converged_after_return_seconds": round(converged, 3),
        "first_publish_after_return_seconds": round(republished, 3),
        "client_reconnects": swarm.reconnects - reconnects_before,
        "client_closes": sum(swarm.close_codes.values()) - closes_before,
        "stale_clients": stale,
        "out_of_order": sum(c.out_of_order for c in swarm.clients),
        "unready_samples_outside_outage": len(not_ready_outside),
        "steady_p99_ms": round(percentile(steady, 99) * 1000, 2),
        "first_unready_after_kill_s": round(min(at for at, _ in unready) - killed_at, 3)
        if unready
        else None,
        "last_unready_after_return_s": round(max(at for at, _ in unready) - back_at, 3)
        if unready
        else None,
    }
    record("redis_outage", "large" if size is LARGE else "ci", figures)
    assert swarm.violations() == []
    assert figures["client_reconnects"] == 0, swarm.close_codes
    assert figures["client_closes"] == 0, swarm.close_codes
    assert stale == 0
    assert figures["out_of_order"] == 0
    assert unready_names == {g.name for g in gateways}, "every gateway reported the outage"
    assert not [n for at, n in unready if at < killed_at], "unready before the outage"
    for gateway in gateways:
        assert gateway.alive
        assert gateway.tracebacks() == []
    # Recovery within the bound: the broker's reconnect backoff and the Publisher's queue
    # backoff are capped at 1 s (full jitter), so each tries again within a second of Redis.
    assert converged <= CONVERGE_SECONDS, figures
    assert not not_ready_outside, figures
