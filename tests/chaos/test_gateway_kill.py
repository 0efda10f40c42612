"""A gateway SIGKILLed under load (issue 12, "The project proves it").

Required: its clients reconnect elsewhere and converge; the others notice nothing.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass

import pytest

from chaos.feed import Feed
from chaos.figures import record
from chaos.processes import GatewayLauncher
from chaos.scale import sizes
from chaos.swarm import Policy, Swarm, loopback_sources, percentile
from redis_servers import RedisServer

pytestmark = pytest.mark.redis

#: the killed pod's clients are all subscribed elsewhere, at the newest versions, this soon
RECOVER_SECONDS = 10.0


@dataclass(frozen=True)
class Size:
    gateways: int
    clients: int
    games: int
    rate: float


CI = Size(gateways=3, clients=300, games=20, rate=100)
LARGE = Size(gateways=3, clients=4500, games=200, rate=400)


@pytest.mark.parametrize("size", sizes(CI, LARGE))
async def test_a_killed_gateways_clients_converge_elsewhere_and_the_others_notice_nothing(
    size: Size,
    redis_server: RedisServer,
    launch_gateways: GatewayLauncher,
    tokens: Callable[[int], str],
) -> None:
    gateways = launch_gateways(size.gateways, "--broker", redis_server.url, "--authz", "open")
    games = list(range(1, size.games + 1))
    feed = Feed(redis_server.url, games, size.rate)
    # The shipped clients' policy: back off with full jitter (≤ 1 s), try the next pod.
    swarm = Swarm(
        [(g.host, g.port) for g in gateways],
        policy=Policy(reconnect=True),
        sources=loopback_sources(size.clients // 40 + 1),  # clients of many hosts
    )
    loop = asyncio.get_running_loop()
    victim = gateways[0]
    try:
        for game in games:
            feed.commit(game)
        assert await feed.flush(10)
        clients = swarm.add(size.clients, games, tokens)
        await swarm.connect(clients)
        await swarm.until("every client subscribed", lambda: swarm.subscribed() == len(clients), 60)
        orphans = [c for c in clients if c.target == 0]
        others = [c for c in clients if c.target != 0]
        feed.start()
        await swarm.until("a first round of updates", lambda: not swarm.behind(feed.committed), 30)
        steady_from = loop.time()
        await asyncio.sleep(2.0)  # the steady phase: two seconds of traffic

        killed_at = loop.time()
        victim.kill()
        received_at_kill = {c.index: c.received for c in others}
        closes_at_kill = {c.index: (len(c.closes), c.attempts) for c in others}
        newest_at_kill = dict(feed.committed)
        moved = await swarm.until(
            "the killed pod's clients subscribed on another pod",
            lambda: all(c.subscribed and c.target != 0 for c in orphans),
            RECOVER_SECONDS,
        )
        converged = await swarm.until(
            "the killed pod's clients at their games' newest versions",
            lambda: not swarm.behind(newest_at_kill, orphans),
            RECOVER_SECONDS,
        )
        await asyncio.sleep(1.0)  # one more second of traffic
        recovered_at = loop.time()
        await feed.stop()
        assert await feed.flush(10)
        await swarm.until("the final versions", lambda: not swarm.behind(feed.committed), 10)
    finally:
        await swarm.close()
        await feed.aclose()

    others_closed = [
        c.index for c in others if (len(c.closes), c.attempts) != closes_at_kill[c.index]
    ]
    others_starved = [c.index for c in others if c.received <= received_at_kill[c.index]]
    before = percentile(swarm.latencies(steady_from, killed_at), 99)
    during = percentile(swarm.latencies(killed_at, recovered_at), 99)
    figures = {
        "gateways": size.gateways,
        "clients": size.clients,
        "clients_on_killed_pod": len(orphans),
        "games": size.games,
        "commits_per_second": size.rate,
        "moved_after_kill_seconds": round(moved, 3),
        "converged_after_kill_seconds": round(moved + converged, 3),
        "client_reconnects": swarm.reconnects,
        "others_disconnected": len(others_closed),
        "others_without_updates": len(others_starved),
        "out_of_order": sum(c.out_of_order for c in clients),
        "p99_before_ms": round(before * 1000, 2),
        "p99_after_kill_ms": round(during * 1000, 2),
    }
    record("gateway_kill", "large" if size is LARGE else "ci", figures)
    assert swarm.violations() == []
    assert others_closed == []
    assert others_starved == []
    assert figures["out_of_order"] == 0
    assert not swarm.behind(feed.committed)
    for gateway in gateways[1:]:
        assert gateway.alive
        assert gateway.tracebacks() == []
