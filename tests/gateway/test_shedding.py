"""gamesync.shedding: which connections move first, at what pace, and when a shed is refused."""

from __future__ import annotations

import asyncio
import random

import httpx
import pytest
from standins import StandInMember
from wire import GatewayFactory, Keys, close_code, connect, recv_json

from gamesync.connection import ConnectionEnd, ConnectionState
from gamesync.protocol import Close
from gamesync.registry import Registry
from gamesync.shedding import (
    RECONNECT_SPREAD_MS,
    Candidate,
    Shedder,
    ShedRefused,
    drain_seconds,
    paced,
    plan_order,
)


def test_the_fewest_subscriptions_go_first_and_among_equals_the_newest() -> None:
    candidates = [
        Candidate(0, subscriptions=3, opened_at=1.0),
        Candidate(1, subscriptions=0, opened_at=1.0),
        Candidate(2, subscriptions=1, opened_at=5.0),
        Candidate(3, subscriptions=0, opened_at=9.0),
        Candidate(4, subscriptions=1, opened_at=2.0),
    ]
    assert plan_order(candidates) == [3, 1, 2, 4, 0]


def test_closes_are_spread_evenly_over_the_time_given() -> None:
    assert paced(400, 0.4) == (50, 0.05)  # eight batches, one every 50 ms
    assert paced(10, 10.0) == (1, 1.0)  # never more batches than connections
    assert paced(5, 0.0) == (5, 0.0)  # at once
    assert paced(0, 3.0) == (0, 0.0)


def test_a_drain_goes_at_the_evacuation_rate_but_always_within_its_window() -> None:
    assert drain_seconds(100, window=30, rate=1000) == 0.1
    assert drain_seconds(50_000, window=30, rate=1000) == 27.0  # the window wins
    assert drain_seconds(100, window=30, rate=0) == 27.0  # no rate: the whole window


def _pod(n: int) -> tuple[Registry, list[StandInMember]]:
    ends: list[ConnectionEnd] = []
    registry = Registry(max_connections=100, max_connections_per_user=100, on_end=ends.append)
    members = []
    for i in range(n):
        member = StandInMember(f"user-{i}")
        member.conn.opened_at = float(i)
        member.conn.subscriptions = {g: 1 for g in range(i % 3)}  # 0, 1 or 2 games
        assert registry.attach(member) is None
        assert registry.admit(member) is None
        members.append(member)
    return registry, members


async def test_a_shed_moves_the_chosen_connections_with_a_jittered_reconnect_hint() -> None:
    registry, members = _pod(9)
    broker_up = True
    shedder = Shedder(registry, lambda: broker_up, random.Random(7), hold=0.0)
    assert shedder.start(4, seconds=0.0) == 4
    assert shedder.shedding
    await asyncio.wait_for(shedder.finished(), 5)
    moved = [m for m in members if m.socket.closes]
    # No subscriptions: users 0, 3, 6, newest first; then the newest with one game: 7.
    assert [m.conn.user_id for m in moved] == ["user-0", "user-3", "user-6", "user-7"]
    for member in moved:
        [hint] = member.socket.messages()
        assert hint["type"] == "reconnect"
        assert hint["reason"] == "rebalancing"
        assert 100 <= hint["retryAfterMs"] <= RECONNECT_SPREAD_MS
        assert member.socket.closes[0][0] == Close.DRAINING
        assert member.conn.state is ConnectionState.CLOSING
    assert shedder.stats() == {"inProgress": False, "requested": 4, "done": 4, "total": 4}
    assert shedder.start(100, seconds=0.0) == 5  # no more than are open
    await asyncio.wait_for(shedder.finished(), 5)
    assert shedder.stats()["total"] == 9


async def test_a_shed_is_refused_during_a_drain_a_broker_outage_or_another_shed() -> None:
    registry, _ = _pod(3)
    broker_up = {"ok": False}
    shedder = Shedder(registry, lambda: broker_up["ok"], hold=0.0)
    with pytest.raises(ShedRefused) as outage:
        shedder.start(1, seconds=1.0)
    assert (outage.value.status, outage.value.reason) == (503, "broker unavailable")
    broker_up["ok"] = True
    for bad in ((0, 1.0, 0.0), (1, -1.0, 0.0), (1, 1.0, 1e9)):
        with pytest.raises(ShedRefused) as nonsense:
            shedder.start(*bad)
        assert nonsense.value.status == 400
    shedder.start(1, seconds=1.0, delay=10.0)
    with pytest.raises(ShedRefused) as busy:
        shedder.start(1, seconds=1.0)
    assert (busy.value.status, busy.value.reason) == (409, "already shedding")
    await shedder.stop()
    assert not shedder.shedding
    registry.start_draining()
    with pytest.raises(ShedRefused) as draining:
        shedder.start(1, seconds=1.0)
    assert (draining.value.status, draining.value.reason) == (409, "draining")


@pytest.mark.parametrize("cause", ["drain", "broker"])
async def test_a_shed_stops_when_a_drain_or_a_broker_outage_starts_midway(cause: str) -> None:
    registry, members = _pod(10)
    broker = {"ok": True}
    shedder = Shedder(registry, lambda: broker["ok"], hold=0.0)
    shedder.start(10, seconds=5.0)  # one connection every 0.5 s
    loop = asyncio.get_running_loop()
    deadline = loop.time() + 5
    while not shedder.done:
        assert loop.time() < deadline
        await asyncio.sleep(0.01)  # poll until the first batch went
    if cause == "drain":
        registry.start_draining()
    else:
        broker["ok"] = False
    await asyncio.wait_for(shedder.finished(), 5)
    assert shedder.done == 1
    assert sum(1 for m in members if m.socket.closes) == 1


async def test_the_pod_stays_shedding_until_the_moved_clients_had_time_to_land_elsewhere() -> None:
    registry, _ = _pod(2)
    shedder = Shedder(registry, lambda: True, hold=0.2)
    loop = asyncio.get_running_loop()
    started = loop.time()
    shedder.start(2, seconds=0.0)
    await asyncio.wait_for(shedder.finished(), 5)
    assert loop.time() - started >= 0.19
    assert shedder.stats()["done"] == 2


async def test_the_internal_port_takes_a_shed_request_and_reports_it(
    gateway_factory: GatewayFactory, keys: Keys
) -> None:
    server = await gateway_factory()
    clients = [await connect(server, token=keys.token(str(i))) for i in range(3)]
    for ws in clients:
        assert (await recv_json(ws))["type"] == "welcome"
    async with httpx.AsyncClient(base_url=server.internal_url) as api:
        for bad in (b"{", b"[]", b'{"connections": "3", "seconds": 1}', b'{"seconds": 1}'):
            answer = await api.post("/v1/shed", content=bad)
            assert answer.status_code == 400, bad
        answer = await api.post(
            "/v1/shed", json={"connections": 2, "seconds": 0.1, "delaySeconds": 0.2}
        )
        assert (answer.status_code, answer.json()) == (202, {"accepted": True, "connections": 2})
        again = await api.post("/v1/shed", json={"connections": 1, "seconds": 0})
        assert (again.status_code, again.json()) == (409, {"error": "already shedding"})
        ready = await api.get("/readyz")
        assert ready.status_code == 503
        assert "shedding" in ready.json()["reasons"]
        stats = (await api.get("/v1/stats")).json()
        assert stats["shed"] == {"inProgress": True, "requested": 2, "done": 0, "total": 0}
        async with asyncio.timeout(5):
            while (await api.get("/v1/stats")).json()["shed"]["done"] < 2:
                await asyncio.sleep(0.02)  # poll until both moved
    moved = []
    for ws in clients:
        try:
            hint = await recv_json(ws, timeout=0.5)
        except TimeoutError:
            continue  # not chosen: still served
        moved.append((hint["type"], hint["reason"], await close_code(ws)))
        assert 100 <= hint["retryAfterMs"] <= 2000
    assert moved == [("reconnect", "rebalancing", 1012)] * 2
    for ws in clients:
        await ws.close()
