"""SIGTERM drain of a loaded gateway process (issue 12, "The project proves it").

Required (large size): ≥ 2,000 clients, 100 % receive `reconnect` before close 1012, the
closes spread over the drain window rather than in one burst.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass

import pytest

from chaos.figures import record
from chaos.processes import GatewayLauncher
from chaos.scale import sizes
from chaos.swarm import Policy, Swarm, loopback_sources

#: in any tenth of the window, at most this share of the clients is closed (even pacing: ~11 %)
MAX_SHARE_PER_TENTH = 0.25
#: the closes cover at least this share of the window's paced part (90 % of it)
MIN_SPAN_SHARE = 0.7


@dataclass(frozen=True)
class Size:
    clients: int
    window: float  # --drain-seconds


CI = Size(clients=500, window=4.0)
LARGE = Size(clients=2500, window=10.0)


@pytest.mark.parametrize("size", sizes(CI, LARGE))
async def test_sigterm_drain_tells_every_client_to_reconnect_then_closes_1012_spread_out(
    size: Size, launch_gateways: GatewayLauncher, tokens: Callable[[int], str]
) -> None:
    (gateway,) = launch_gateways(
        1, "--authz", "open", "--drain-seconds", str(size.window), "--idle-timeout", "600"
    )
    # Clients of many hosts, as a per-address cap on unauthenticated sockets expects.
    swarm = Swarm(
        [(gateway.host, gateway.port)],
        # admission is paced: those held back while connecting come back, as clients do
        policy=Policy(reconnect=True, move_on=False),
        sources=loopback_sources(size.clients // 40 + 1),
    )
    loop = asyncio.get_running_loop()
    try:
        clients = swarm.add(size.clients, [1], tokens)
        await swarm.connect(clients)
        await swarm.until("every client subscribed", lambda: swarm.subscribed() == len(clients), 60)
        swarm.policy = Policy(reconnect=False)  # the drain's hints are what is measured
        terminated_at = loop.time()
        gateway.terminate()
        await swarm.until(
            "every client closed",
            lambda: all(_after(c.closes, terminated_at) for c in clients),
            size.window + 10,
        )
        exit_code = await asyncio.to_thread(gateway.proc.wait, 15)
        exited_after = loop.time() - terminated_at
    finally:
        await swarm.close()

    closes = {c.index: _after(c.closes, terminated_at)[0] for c in clients}
    hints = {c.index: _after(c.hints, terminated_at) for c in clients}
    unwarned = [
        i for i, (at, code) in closes.items() if not hints[i] or code != 1012 or hints[i][0][0] > at
    ]
    hints_ms = [ms for hinted in hints.values() for _, ms in hinted]
    closed_at = sorted(at - terminated_at for at, _ in closes.values())
    span = closed_at[-1] - closed_at[0]
    tenth = size.window / 10
    busiest = max(sum(1 for t in closed_at if k * tenth <= t < (k + 1) * tenth) for k in range(11))
    figures = {
        "clients": size.clients,
        "drain_seconds": size.window,
        "warned_then_1012_percent": round(100 * (1 - len(unwarned) / len(clients)), 2),
        "first_close_s": round(closed_at[0], 3),
        "last_close_s": round(closed_at[-1], 3),
        "busiest_tenth_percent": round(100 * busiest / len(clients), 1),
        "retry_after_ms_range": [min(hints_ms), max(hints_ms)],
        "exit_code": exit_code,
        "exited_after_s": round(exited_after, 2),
        "close_codes": dict(swarm.close_codes),
    }
    record("drain", "large" if size is LARGE else "ci", figures)
    assert swarm.violations() == []
    assert unwarned == [], f"{len(unwarned)} clients closed without a reconnect hint first"
    assert all(100 <= ms <= 2000 for ms in hints_ms)
    assert span >= MIN_SPAN_SHARE * 0.9 * size.window, figures
    assert busiest <= MAX_SHARE_PER_TENTH * len(clients), figures
    assert exit_code == 0
    assert exited_after <= size.window + 5
    assert gateway.tracebacks() == []


def _after(events: list[tuple[float, int]], start: float) -> list[tuple[float, int]]:
    """The (loop time, value) events at or after `start`."""
    return [event for event in events if event[0] >= start]
