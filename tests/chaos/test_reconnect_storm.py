"""A reconnect storm on one gateway, as after the loss of a pod (issue 12, "The project proves it").

Required (large size): ≥ 5,000 clients connecting to one gateway at once are all admitted within
a stated bound; admission is paced by a token bucket, and those held back get a clean 1013 after
a `reconnect` hint carrying `retryAfterMs` (never a handshake timeout, never an HTTP 5xx); 0
failed joins once admitted; the already-connected clients' p99 stays ≤ 2 x its value before.

The bound: a pod admits `admission_burst` at once and `admission_rate` a second after that (500
and 500 by default), so N clients need (N - burst) / rate seconds; the bound allows that plus
`SLACK_SECONDS` for the handshakes, the joins and the clients' own retry timing.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

from chaos.crowd import Crowd
from chaos.feed import Feed
from chaos.figures import record
from chaos.processes import GatewayLauncher
from chaos.scale import sizes
from chaos.swarm import Policy, Swarm, loopback_sources
from redis_servers import RedisServer

pytestmark = pytest.mark.redis

#: the gateway's admission pacing defaults (`--admission-rate`, `--admission-burst`)
ADMISSION_RATE = 500
ADMISSION_BURST = 500
SLACK_SECONDS = 5.0
#: p99 floor: below this, twice a tiny baseline is timer noise on a shared 2-core machine
P99_FLOOR_SECONDS = 0.010


@dataclass(frozen=True)
class Size:
    steady: int  # clients connected before the storm
    storm: int  # clients arriving at once
    games: int
    rate: float

    @property
    def bound(self) -> float:
        """Seconds within which every storm client must be admitted and subscribed."""
        return max(0, self.storm - ADMISSION_BURST) / ADMISSION_RATE + SLACK_SECONDS


CI = Size(steady=200, storm=1500, games=20, rate=100)
LARGE = Size(steady=1000, storm=5000, games=100, rate=200)


@pytest.mark.parametrize("size", sizes(CI, LARGE))
async def test_a_reconnect_storm_is_admitted_paced_and_cleanly_without_hurting_the_connected(
    size: Size,
    redis_server: RedisServer,
    launch_gateways: GatewayLauncher,
    tokens: Callable[[int], str],
    signer_path: Path,
) -> None:
    (gateway,) = launch_gateways(1, "--broker", redis_server.url, "--authz", "open")
    target = [(gateway.host, gateway.port)]
    games = list(range(1, size.games + 1))
    feed = Feed(redis_server.url, games, size.rate)
    # The connected clients measure from a process of their own (see chaos.crowd).
    connected = await Crowd.spawn()
    # Clients of a lost pod come from many hosts: spread them so per-address caps see that.
    storm = Swarm(
        target,
        policy=Policy(reconnect=True, move_on=False, handshake_timeout=10.0),
        sources=loopback_sources(size.storm // 40 + 1, subnet=2),
    )
    loop = asyncio.get_running_loop()
    try:
        for game in games:
            feed.commit(game)
        assert await feed.flush(10)
        await connected.start(target, size.steady, games, signer_path)
        arriving = storm.add(size.storm, games, lambda i: tokens(size.steady + i))
        feed.start()
        await connected.until_current(feed.committed)
        before_from = loop.time()
        await asyncio.sleep(3.0)  # the steady phase before the storm

        storm_at = loop.time()
        storm.spawn(storm.connect(arriving, concurrency=0))  # every handshake at once
        admitted = await storm.until(
            "every storm client admitted and subscribed",
            lambda: all(c.subscribed_at is not None for c in arriving),
            size.bound + 30,
        )
        storm_end = loop.time()
        await asyncio.sleep(1.0)
        await feed.stop()
        assert await feed.flush(10)
        await storm.until("the final versions", lambda: not storm.behind(feed.committed), 10)
        await connected.until_current(feed.committed)
        latency = await connected.latency((before_from, storm_at), (storm_at, storm_end))
        seen = await connected.status()
    finally:
        await connected.stop()
        await storm.close()
        await feed.aclose()

    held_back = sum(1 for c in arriving for _, code in c.closes if code == 1013)
    # clean: every close a 1013, and every 1013 after a `reconnect` hint with retryAfterMs
    unclean = [
        c.index
        for c in arriving
        if any(code != 1013 for _, code in c.closes)
        or len(c.hints) < sum(code == 1013 for _, code in c.closes)
    ]
    http_5xx = sum(n for c in arriving for status, n in c.refusals.items() if status >= 500)
    timeouts = sum(c.timeouts for c in arriving)
    failed_joins = sum(c.failed_joins for c in arriving)
    hints_ms = [ms for c in arriving for _, ms in c.hints]
    p99_before, p99_during = latency["p99"]
    figures = {
        "connected_clients": size.steady,
        "storm_clients": size.storm,
        "admitted_all_within_s": round(admitted, 2),
        "bound_s": round(size.bound, 2),
        "held_back_1013": held_back,
        "unclean_refusals": len(unclean),
        "http_5xx": http_5xx,
        "handshake_timeouts": timeouts,
        "failed_joins": failed_joins,
        "retry_after_ms_max": max(hints_ms, default=0),
        "connected_p50_before_ms": round(latency["p50"][0] * 1000, 2),
        "connected_p50_during_ms": round(latency["p50"][1] * 1000, 2),
        "connected_p99_before_ms": round(p99_before * 1000, 2),
        "connected_p99_during_ms": round(p99_during * 1000, 2),
        "connected_closes": seen["closes"],
        "storm_close_codes": {str(k): v for k, v in storm.close_codes.items()},
        "storm_errors": dict(storm.errors),
    }
    record("reconnect_storm", "large" if size is LARGE else "ci", figures)
    assert storm.violations() == []
    assert seen["violations"] == []
    assert admitted <= size.bound, figures
    assert unclean == [], figures
    assert http_5xx == 0, figures
    assert timeouts == 0, figures
    assert failed_joins == 0, figures
    assert seen["closes"] == 0, figures
    assert seen["out_of_order"] == 0, figures
    assert p99_during <= max(2 * p99_before, P99_FLOOR_SECONDS), figures
    assert gateway.alive
    assert gateway.tracebacks() == []
