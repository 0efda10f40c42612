"""A reconnect storm on one gateway, as after the loss of a pod (issue 12, "The project proves it").

Required (large size): ≥ 5,000 clients connecting to one gateway at once are all admitted within
a stated bound; admission is paced by a token bucket, and those held back get a clean 1013 after
a `reconnect` hint carrying `retryAfterMs` (never a handshake timeout, never an HTTP 5xx); 0
failed joins once admitted; the already-connected clients' p99 stays ≤ 2 x its value before.

The bound: a pod admits `admission_burst` at once and `admission_rate` a second after that (500
and 500 by default), so N clients need (N - burst) / rate seconds; the bound allows a quarter
more, for clients held back twice on a busy machine, plus `SLACK_SECONDS` for the handshakes,
the joins and the clients' own retry timing (5,000 clients: 16.25 s).
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from pathlib import Path

import pytest

from chaos.child import Child
from chaos.figures import record
from chaos.known import check_gap, loaded_machine
from chaos.processes import GatewayLauncher
from chaos.scale import sizes
from chaos.swarm import loopback_sources
from gamesync.settings import ADMISSION_BURST, ADMISSION_RATE
from redis_servers import RedisServer

pytestmark = pytest.mark.redis

SLACK_SECONDS = 5.0
#: p99 floor: below this, twice a tiny baseline is timer noise on a shared 2-core machine
P99_FLOOR_SECONDS = 0.010
#: No known gap (docs/RELIABILITY.md): with handshakes paced per loop turn, full GC passes
#: kept out of the storm and closed connections freed without the cyclic collector, the
#: connected clients' p99 held in every run on a quiet machine: 4.6-9.6 ms at large size
#: (7 runs), 3.1-6.8 ms at CI size (3 runs), against the 10 ms floor. On a loaded machine the
#: storm's handshakes share the cores with the measuring clients (84 ms at load 4.8): asserted
#: plainly unless the machine was loaded when the scenario started (`loaded_machine`).
P99_GAP: str | None = None


@dataclass(frozen=True)
class Size:
    steady: int  # clients connected before the storm
    storm: int  # clients arriving at once
    games: int
    rate: float

    @property
    def bound(self) -> float:
        """Seconds within which every storm client must be admitted and subscribed."""
        return 1.25 * max(0, self.storm - ADMISSION_BURST) / ADMISSION_RATE + SLACK_SECONDS


CI = Size(steady=200, storm=1500, games=20, rate=100)
LARGE = Size(steady=1000, storm=5000, games=100, rate=200)


@pytest.mark.parametrize("size", sizes(CI, LARGE))
async def test_a_reconnect_storm_is_admitted_paced_and_cleanly_without_hurting_the_connected(
    size: Size, redis_server: RedisServer, launch_gateways: GatewayLauncher, signer_path: Path
) -> None:
    p99_gap = P99_GAP or loaded_machine("the connected clients' p99 during the storm")
    (gateway,) = launch_gateways(1, "--broker", redis_server.url, "--authz", "open")
    target = [(gateway.host, gateway.port)]
    games = list(range(1, size.games + 1))
    # The backend, the connected clients and the storm each run in a process of their own
    # (chaos.child): none of them slows another down, so what they measure is the gateway.
    backend, connected, storm = await Child.spawn(), await Child.spawn(), await Child.spawn()
    loop = asyncio.get_running_loop()
    try:
        await backend.feed(redis_server.url, games, size.rate)
        await connected.swarm(
            target,
            size.steady,
            games,
            signer_path,
            sources=loopback_sources(size.steady // 40 + 1),
            reconnect=True,  # admission is paced for them too: those held back come back
            move_on=False,
        )
        await connected.until_current(await backend.committed())
        before_from = loop.time()
        await asyncio.sleep(3.0)  # the steady phase before the storm

        storm_at = loop.time()
        await storm.swarm(
            target,
            size.storm,
            games,
            signer_path,
            user_offset=size.steady,
            # Clients of a lost pod come from many hosts: per-address caps must see that.
            sources=loopback_sources(size.storm // 40 + 1, subnet=2),
            reconnect=True,
            move_on=False,
            concurrency=0,  # every handshake at once
            wait=False,
        )
        await storm.until(
            "every storm client admitted and subscribed",
            lambda status: status["all_subscribed_once"],
            size.bound + 30,
        )
        arrived = await storm.status()
        storm_end = arrived["last_subscribed_at"]
        await asyncio.sleep(1.0)
        newest = await backend.feed_stop()
        await storm.until_current(newest)
        await connected.until_current(newest)
        latency = await connected.latency((before_from, storm_at), (storm_at, storm_end))
        seen = await connected.status(since=before_from)
        arrived = await storm.status()
    finally:
        for child in (storm, connected, backend):
            await child.stop()

    p99_before, p99_during = latency["p99"]
    admitted = storm_end - storm_at
    figures = {
        "connected_clients": size.steady,
        "storm_clients": size.storm,
        "admitted_all_within_s": round(admitted, 2),
        "bound_s": round(size.bound, 2),
        "held_back_1013": arrived["held_back_1013"],
        "unclean_refusals": arrived["unclean"],
        "http_5xx": arrived["http_5xx"],
        "handshake_timeouts": arrived["timeouts"],
        "failed_joins": arrived["failed_joins"],
        "retry_after_ms_max": arrived["retry_after_ms_max"],
        "connected_p50_before_ms": round(latency["p50"][0] * 1000, 2),
        "connected_p50_during_ms": round(latency["p50"][1] * 1000, 2),
        "connected_p99_before_ms": round(p99_before * 1000, 2),
        "connected_p99_during_ms": round(p99_during * 1000, 2),
        "connected_closes": seen["closes_since"],
        "storm_close_codes": arrived["close_codes"],
        "storm_errors": arrived["errors"],
    }
    record("reconnect_storm", "large" if size is LARGE else "ci", figures)
    assert arrived["violations"] == []
    assert seen["violations"] == []
    assert admitted <= size.bound, figures
    assert arrived["unclean"] == 0, figures
    assert arrived["http_5xx"] == 0, figures
    assert arrived["timeouts"] == 0, figures
    assert arrived["failed_joins"] == 0, figures
    assert arrived["out_of_order"] == 0, figures
    assert seen["closes_since"] == 0, figures
    assert seen["attempts_since"] == 0, figures
    assert seen["out_of_order"] == 0, figures
    assert gateway.alive
    assert gateway.tracebacks() == []
    # Not strict: on a loaded machine a run can still meet it.
    check_gap(p99_during <= max(2 * p99_before, P99_FLOOR_SECONDS), p99_gap, figures, strict=False)
