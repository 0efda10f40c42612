"""gamesync.client against a real in-process gateway (uvicorn on 127.0.0.1, port 0)."""

from __future__ import annotations

import asyncio
import json
import random
import socket
import time
import weakref
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest

from gamesync.authz import Access
from gamesync.client import (
    ClientError,
    ClientStatus,
    GameSyncClient,
    Snapshot,
    backoff_delay,
    retry_after,
)
from gamesync.envelope import parse_envelope
from gamesync.keys import Identity, generate_key, sign_token
from gamesync.server import GatewayServer
from gamesync.settings import load_settings

Signer = dict[str, Any]
StartGateway = Callable[..., Awaitable[GatewayServer]]


@pytest.fixture
def signer(tmp_path: Path) -> Signer:
    private, public = generate_key("ES256", kid="client-test")
    (tmp_path / "jwks.json").write_text(json.dumps({"keys": [public]}))
    return {"keys": [private], "active": "client-test"}


@pytest.fixture
async def start_gateway(tmp_path: Path, signer: Signer) -> AsyncIterator[StartGateway]:
    """Start gateways on loopback; every one still running is stopped at teardown."""
    running: list[GatewayServer] = []

    async def start(**overrides: Any) -> GatewayServer:
        options: dict[str, Any] = {
            "host": "127.0.0.1",
            "port": 0,
            "internal_port": 0,
            "keys": tmp_path / "jwks.json",
            "publish_token": "publish",
            "authz": "open",
            "unsubscribe_linger_seconds": 0.05,
            "drain_seconds": 0.2,
        }
        options.update(overrides)
        server = GatewayServer(load_settings(**options))
        await server.start()
        running.append(server)
        return server

    yield start
    for server in running:
        if server not in STOPPED:
            await server.stop()


STOPPED: weakref.WeakSet[GatewayServer] = weakref.WeakSet()


async def stop(server: GatewayServer) -> None:
    await server.stop()
    STOPPED.add(server)


def public_port(server: GatewayServer) -> int:
    return int(server.public_url.rsplit(":", 1)[1])


def ws_url(server: GatewayServer) -> str:
    return server.public_url.replace("http://", "ws://") + "/ws"


async def publish(server: GatewayServer, game_id: int, version: int, **extra: Any) -> bool:
    doc = {"gameId": game_id, "version": version, "snapshot": {"v": version}, **extra}
    return await server.gateway.publish(parse_envelope(json.dumps(doc)))


class Recorder:
    """Collects status changes and errors; lets a test wait for one with a deadline."""

    def __init__(self) -> None:
        self.statuses: list[tuple[ClientStatus, ClientError | None]] = []
        self.errors: list[ClientError] = []
        self._changed = asyncio.Condition()

    def on_status(self, status: ClientStatus, error: ClientError | None) -> None:
        self.statuses.append((status, error))
        asyncio.get_running_loop().create_task(self._notify())

    def on_error(self, error: ClientError) -> None:
        self.errors.append(error)
        asyncio.get_running_loop().create_task(self._notify())

    async def _notify(self) -> None:
        async with self._changed:
            self._changed.notify_all()

    async def wait_for(self, predicate: Callable[[], bool], timeout: float = 5.0) -> None:
        async with asyncio.timeout(timeout), self._changed:
            await self._changed.wait_for(predicate)

    def count(self, status: ClientStatus) -> int:
        return sum(1 for s, _ in self.statuses if s is status)


async def eventually(predicate: Callable[[], bool], timeout: float = 5.0) -> None:
    """Wait until `predicate()` holds (server-side state has no event to wait on)."""
    async with asyncio.timeout(timeout):
        while not predicate():
            await asyncio.sleep(0.01)


async def next_snapshot(stream: AsyncIterator[Snapshot], timeout: float = 5.0) -> Snapshot:
    async with asyncio.timeout(timeout):
        return await anext(stream)


def token_for(signer: Signer, sub: str = "7", **kwargs: Any) -> Callable[[], str]:
    return lambda: sign_token(signer, sub, **{"ttl": 3600, **kwargs})


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


# backoff ---------------------------------------------------------------------------------------


class ParkedSleep:
    """The client's `sleep`: records each delay, and after `after` of them parks (until
    close() cancels the loop), so that a test reads the schedule without waiting it out."""

    def __init__(self, after: int) -> None:
        self.after = after
        self.delays: list[float] = []
        self.parked = asyncio.Event()

    async def __call__(self, delay: float) -> None:
        self.delays.append(delay)
        if len(self.delays) == self.after:
            self.parked.set()
            await asyncio.Event().wait()


def test_backoff_ceiling_doubles_per_attempt_until_the_cap() -> None:
    schedule = [backoff_delay(n, 0.5, 10.0, rng=lambda: 1.0) for n in range(8)]
    assert schedule == [0.5, 1.0, 2.0, 4.0, 8.0, 10.0, 10.0, 10.0]


def test_backoff_is_a_full_jitter_draw_between_zero_and_the_ceiling() -> None:
    assert backoff_delay(3, 0.5, 10.0, rng=lambda: 0.0) == 0.0
    assert backoff_delay(3, 0.5, 10.0, rng=lambda: 0.25) == 1.0
    rng = random.Random(7)
    draws = [backoff_delay(4, 0.5, 10.0, rng=rng.random) for _ in range(500)]
    assert all(0.0 <= d < 8.0 for d in draws)
    assert min(draws) < 1.0 < 7.0 < max(draws)  # spread over the whole range, not ±50 %


def test_backoff_survives_huge_and_negative_attempts() -> None:
    assert backoff_delay(10_000, 0.5, 30.0, rng=lambda: 1.0) == 30.0
    assert backoff_delay(-3, 0.5, 30.0, rng=lambda: 1.0) == 0.5


async def test_client_backs_off_on_the_injected_schedule_while_the_gateway_is_down() -> None:
    sleeps = ParkedSleep(after=5)

    recorder = Recorder()
    client = GameSyncClient(
        f"ws://127.0.0.1:{free_port()}/ws",
        lambda: "token",
        backoff_base=0.1,
        backoff_cap=0.5,
        rng=lambda: 0.5,
        sleep=sleeps,
        on_status=recorder.on_status,
    )
    waiter = asyncio.create_task(client.connect())
    async with asyncio.timeout(5):
        await sleeps.parked.wait()
    assert sleeps.delays == [0.05, 0.1, 0.2, 0.25, 0.25]
    assert client.status is ClientStatus.RECONNECTING
    assert client.error is not None
    assert client.error.code == "connect_failed"
    await client.close()
    with pytest.raises(ClientError, match="closed"):
        await waiter
    assert recorder.statuses[-1][0] is ClientStatus.DISCONNECTED


def test_retry_after_is_read_from_refusals_only_and_bounded() -> None:
    assert retry_after(429, "7") == 7.0
    assert retry_after(503, " 2.5 ") == 2.5
    assert retry_after(429, "86400") == 300.0  # a proxy asking for hours is capped
    assert retry_after(429, "-3") == 0.0
    assert retry_after(429, "Wed, 21 Oct 2026 07:28:00 GMT") is None  # the date form: backoff
    assert retry_after(429, "nan") is None
    assert retry_after(429, None) is None
    assert retry_after(400, "7") is None


async def test_a_refused_handshake_waits_at_least_the_retry_after_it_was_given() -> None:
    """The gateway's abuse penalty answers 429 + Retry-After (DESIGN §2); the client came back
    on its own short backoff, to be refused again."""
    refusals = 0

    async def refuse(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        nonlocal refusals
        await reader.readuntil(b"\r\n\r\n")
        refusals += 1
        writer.write(
            b"HTTP/1.1 429 Too Many Requests\r\nRetry-After: 7\r\n"
            b"Content-Length: 0\r\nConnection: close\r\n\r\n"
        )
        await writer.drain()
        writer.close()

    server = await asyncio.start_server(refuse, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    sleeps = ParkedSleep(after=2)

    client = GameSyncClient(
        f"ws://127.0.0.1:{port}/ws",
        lambda: "token",
        backoff_base=0.1,
        backoff_cap=10.0,
        rng=lambda: 0.5,
        sleep=sleeps,
    )
    waiter = asyncio.create_task(client.connect())
    try:
        async with asyncio.timeout(5):
            await sleeps.parked.wait()
        # 7 s asked, plus the client's own jittered backoff (0.05, then 0.1; the sum at most
        # the backoff cap, or what was asked if that is more): never less than asked.
        assert sleeps.delays == [7.05, 7.1]
        assert refusals == 2
        assert client.error is not None
        assert client.error.code == "connect_failed"
        assert "429" in client.error.message
    finally:
        await client.close()
        server.close()
        await server.wait_closed()
    with pytest.raises(ClientError, match="closed"):
        await waiter


async def test_server_dropping_sockets_right_after_welcome_gets_a_growing_backoff(
    start_gateway: StartGateway, signer: Signer
) -> None:
    srv = await start_gateway()
    sleeps = ParkedSleep(after=4)

    def drop_everyone(status: ClientStatus, error: ClientError | None) -> None:
        if status is ClientStatus.CONNECTED:
            for session in srv.gateway.registry.members():
                session.close(1011, "flaky pod")

    client = GameSyncClient(
        ws_url(srv),
        token_for(signer),
        backoff_base=0.1,
        backoff_cap=10.0,
        rng=lambda: 1.0,
        sleep=sleeps,
        on_status=drop_everyone,
    )
    await client.connect()
    async with asyncio.timeout(5):
        await sleeps.parked.wait()
    assert sleeps.delays == [0.1, 0.2, 0.4, 0.8]  # not reset by each short-lived welcome
    await client.close()


# receiving -------------------------------------------------------------------------------------


async def test_subscribed_games_arrive_in_increasing_version_order(
    start_gateway: StartGateway, signer: Signer
) -> None:
    srv = await start_gateway()
    await publish(srv, 1, 1)
    client = GameSyncClient(ws_url(srv), token_for(signer))
    await client.connect()
    stream = client.snapshots()
    await client.subscribe(1)
    first = await next_snapshot(stream)
    assert first == Snapshot(game_id=1, game_version=1, data={"v": 1}, viewer=None)

    await client.subscribe(2)
    for game_id, version in [(1, 3), (2, 5), (1, 2), (2, 4), (1, 4), (2, 6)]:
        await publish(srv, game_id, version)
    seen: dict[int, list[int]] = {1: [1], 2: []}
    while seen[1][-1] != 4 or not seen[2] or seen[2][-1] != 6:
        snap = await next_snapshot(stream)
        seen[snap.game_id].append(snap.game_version)
    for versions in seen.values():
        assert versions == sorted(set(versions))  # strictly increasing: no stale, no duplicate
    assert 2 not in seen[1]  # published after 3: stale, never delivered
    await client.close()


async def test_async_token_provider_and_viewer_for_this_user_only(
    start_gateway: StartGateway, signer: Signer
) -> None:
    srv = await start_gateway()

    async def provider() -> str:
        return sign_token(signer, "7", ttl=3600)

    await publish(srv, 3, 1, viewers={"7": {"hand": ["AS"]}, "8": {"hand": ["KD"]}})
    async with GameSyncClient(ws_url(srv), provider) as client:
        await client.subscribe(3)
        snap = await next_snapshot(client.snapshots())
    assert snap.viewer == {"hand": ["AS"]}


async def test_unsubscribe_stops_delivery_and_resubscribe_starts_from_latest(
    start_gateway: StartGateway, signer: Signer
) -> None:
    srv = await start_gateway()
    await publish(srv, 1, 1)
    client = GameSyncClient(ws_url(srv), token_for(signer))
    await client.connect()
    stream = client.snapshots()
    await client.subscribe(1)
    assert (await next_snapshot(stream)).game_version == 1
    await client.unsubscribe(1)
    session = next(iter(srv.gateway.registry.members()))
    await eventually(lambda: 1 not in session.conn.subscriptions)
    await publish(srv, 1, 2)
    await client.subscribe(2)
    await publish(srv, 2, 1)
    assert (await next_snapshot(stream)).game_id == 2  # nothing of game 1 came in between
    await client.subscribe(1)
    assert (await next_snapshot(stream)) == Snapshot(1, 2, {"v": 2})
    await client.close()


async def collect_latest(client: GameSyncClient, games: set[int]) -> dict[int, int]:
    seen: dict[int, int] = {}
    stream = client.snapshots()
    while set(seen) != games:
        snap = await next_snapshot(stream)
        seen[snap.game_id] = snap.game_version
    return seen


async def test_subscribes_are_paced_under_the_servers_rate_limit(
    start_gateway: StartGateway, signer: Signer
) -> None:
    srv = await start_gateway(message_rate=20, message_burst=5)
    games = set(range(1, 13))
    for game_id in games:
        await publish(srv, game_id, game_id + 100)
    recorder = Recorder()
    client = GameSyncClient(
        ws_url(srv),
        token_for(signer),
        message_rate=10,
        message_burst=5,
        on_error=recorder.on_error,
    )
    for game_id in games:
        await client.subscribe(game_id)  # before connecting: all sent after the welcome
    await client.connect()
    assert await collect_latest(client, games) == {g: g + 100 for g in games}
    assert recorder.errors == []
    await client.close()


async def test_rate_limited_subscribes_are_sent_again_until_every_game_arrives(
    start_gateway: StartGateway, signer: Signer
) -> None:
    srv = await start_gateway(message_rate=4, message_burst=4)
    games = set(range(1, 11))
    for game_id in games:
        await publish(srv, game_id, 1)
    recorder = Recorder()
    client = GameSyncClient(
        ws_url(srv), token_for(signer), message_burst=20, on_error=recorder.on_error
    )
    await client.connect()
    for game_id in games:
        await client.subscribe(game_id)
    assert await collect_latest(client, games) == dict.fromkeys(games, 1)
    assert any(e.code == "rate_limited" for e in recorder.errors)
    assert client.status is ClientStatus.CONNECTED
    await client.close()


async def test_game_refused_as_unavailable_is_subscribed_again(
    start_gateway: StartGateway, signer: Signer, monkeypatch: pytest.MonkeyPatch
) -> None:
    srv = await start_gateway()
    authorizer = srv.gateway.authorizer
    allow = authorizer.decide
    answers: list[Access] = []

    async def flaky(identity: Identity, token: str, game_id: int) -> Access:
        answer = Access.UNAVAILABLE if not answers else await allow(identity, token, game_id)
        answers.append(answer)
        return answer

    monkeypatch.setattr(authorizer, "decide", flaky)
    await publish(srv, 4, 2)
    recorder = Recorder()
    client = GameSyncClient(ws_url(srv), token_for(signer), on_error=recorder.on_error)
    await client.connect()
    await client.subscribe(4)
    assert await next_snapshot(client.snapshots()) == Snapshot(4, 2, {"v": 2})
    assert [e.code for e in recorder.errors] == ["service_unavailable"]
    assert answers == [Access.UNAVAILABLE, Access.ALLOW]
    await client.close()


async def test_close_ends_the_snapshot_stream(start_gateway: StartGateway, signer: Signer) -> None:
    srv = await start_gateway()
    client = GameSyncClient(ws_url(srv), token_for(signer))
    await client.connect()
    await client.subscribe(1)
    consumer = asyncio.create_task(anext(client.snapshots(), None))
    await client.close()
    async with asyncio.timeout(5):
        assert await consumer is None
    assert client.status is ClientStatus.DISCONNECTED
    assert client.error is None


# reconnecting ----------------------------------------------------------------------------------


async def test_reconnects_after_restart_and_converges_without_duplicates(
    start_gateway: StartGateway, signer: Signer
) -> None:
    first = await start_gateway()
    port = public_port(first)
    recorder = Recorder()
    client = GameSyncClient(
        ws_url(first),
        token_for(signer),
        backoff_base=0.02,
        backoff_cap=0.2,
        on_status=recorder.on_status,
    )
    await client.connect()
    stream = client.snapshots()
    await client.subscribe(1)
    await publish(first, 1, 1)
    await publish(first, 1, 2)
    received = [(await next_snapshot(stream)).game_version]
    if received[-1] != 2:
        received.append((await next_snapshot(stream)).game_version)
    assert received[-1] == 2

    await stop(first)
    await recorder.wait_for(lambda: client.status is ClientStatus.RECONNECTING)
    second = await start_gateway(port=port)
    await publish(second, 1, 2)  # the new pod only knows the version the client already has
    await recorder.wait_for(lambda: recorder.count(ClientStatus.CONNECTED) == 2)
    await eventually(
        lambda: any(s.conn.subscriptions.get(1) == 2 for s in second.gateway.registry.members())
    )  # re-subscribed and sent version 2 again, which the client must drop
    await publish(second, 1, 3)
    assert (await next_snapshot(stream)).game_version == 3
    await client.close()


async def test_drain_hint_sets_the_reconnect_delay(
    start_gateway: StartGateway, signer: Signer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("gamesync.gateway.random.randint", lambda low, high: 1234)
    delays: list[float] = []

    async def fast_sleep(delay: float) -> None:
        delays.append(delay)
        await asyncio.sleep(min(delay, 0.02))

    draining = await start_gateway()
    port = public_port(draining)
    recorder = Recorder()
    client = GameSyncClient(
        ws_url(draining),
        token_for(signer),
        backoff_base=0.02,
        backoff_cap=0.1,
        sleep=fast_sleep,
        on_status=recorder.on_status,
    )
    await client.connect()
    stream = client.snapshots()
    await client.subscribe(5)
    await draining.gateway.drain()
    await recorder.wait_for(lambda: client.status is ClientStatus.RECONNECTING)
    assert client.error is not None
    assert client.error.close_code == 1012
    await recorder.wait_for(lambda: bool(delays))
    assert delays[0] == pytest.approx(1.234)  # the server's jittered hint, not our backoff

    await stop(draining)
    replacement = await start_gateway(port=port)
    await publish(replacement, 5, 9)
    assert (await next_snapshot(stream)) == Snapshot(5, 9, {"v": 9})
    assert recorder.count(ClientStatus.CONNECTED) == 2
    await client.close()


async def test_token_renewal_before_expiry_keeps_the_socket(
    start_gateway: StartGateway, signer: Signer
) -> None:
    srv = await start_gateway(leeway_seconds=0)
    issued: list[int] = []

    def provider() -> str:
        issued.append(int(time.time()) + 2)
        return sign_token(signer, "7", ttl=2)

    recorder = Recorder()
    client = GameSyncClient(ws_url(srv), provider, on_status=recorder.on_status)
    await client.connect()
    await client.subscribe(1)
    (session,) = srv.gateway.registry.members()
    assert session.conn.identity is not None
    first_expiry = session.conn.identity.expires_at
    # A third token is only asked for once the server's second `welcome` (answering the first
    # renewal) has arrived with its new expiresAt.
    await eventually(lambda: len(issued) >= 3, timeout=10)
    assert session.conn.identity.expires_at > first_expiry
    # Past the first token's expiry the sweeper would close an unrenewed socket with 4401.
    srv.gateway.sweeper.sweep(asyncio.get_running_loop().time(), first_expiry + 0.5)
    assert not session.conn.is_closing()
    assert srv.gateway.registry.members() == [session]
    assert recorder.count(ClientStatus.CONNECTED) == 1
    assert client.status is ClientStatus.CONNECTED
    await client.close()


async def test_unrenewed_token_is_closed_at_expiry(
    start_gateway: StartGateway, signer: Signer
) -> None:
    """The control for the renewal test: the same sweep closes a socket that did not renew."""
    srv = await start_gateway(leeway_seconds=0)
    token = sign_token(signer, "7", ttl=2)
    recorder = Recorder()
    client = GameSyncClient(
        ws_url(srv),
        lambda: token,
        renew_margin=0,  # renews at expiry: too late
        on_status=recorder.on_status,
        on_error=recorder.on_error,
    )
    await client.connect()
    (session,) = srv.gateway.registry.members()
    assert session.conn.identity is not None
    srv.gateway.sweeper.sweep(
        asyncio.get_running_loop().time(), session.conn.identity.expires_at + 0.5
    )
    assert session.conn.closing is not None
    assert session.conn.closing.code == 4401
    await recorder.wait_for(lambda: any(e.code == "token_expired" for e in recorder.errors))
    await client.close()


async def test_idle_close_without_games_waits_for_a_subscribe_before_reconnecting(
    start_gateway: StartGateway, signer: Signer
) -> None:
    srv = await start_gateway(idle_timeout=0.3)
    delays: list[float] = []

    async def recording_sleep(delay: float) -> None:
        delays.append(delay)
        await asyncio.sleep(delay)

    recorder = Recorder()
    client = GameSyncClient(
        ws_url(srv), token_for(signer), sleep=recording_sleep, on_status=recorder.on_status
    )
    await client.connect()
    await recorder.wait_for(lambda: client.status is ClientStatus.RECONNECTING)
    assert client.error is not None
    assert client.error.close_code == 4408
    await publish(srv, 8, 1)
    await client.subscribe(8)
    assert await next_snapshot(client.snapshots()) == Snapshot(8, 1, {"v": 1})
    assert recorder.count(ClientStatus.CONNECTED) == 2
    assert delays == []  # reconnected because of the subscribe, not after a backoff
    await client.close()


# refusals --------------------------------------------------------------------------------------


async def test_refused_token_asks_the_provider_once_then_stops(
    start_gateway: StartGateway,
) -> None:
    srv = await start_gateway()
    other, _ = generate_key("ES256", kid="client-test")  # same kid, wrong key
    calls: list[str] = []

    def provider() -> str:
        calls.append("token")
        return sign_token({"keys": [other], "active": "client-test"}, "7", ttl=60)

    recorder = Recorder()
    client = GameSyncClient(ws_url(srv), provider, backoff_base=10.0, on_error=recorder.on_error)
    with pytest.raises(ClientError) as refused:
        await asyncio.wait_for(client.connect(), 5)
    assert refused.value.code == "unauthorized"
    assert refused.value.close_code == 4401
    assert len(calls) == 2
    assert client.status is ClientStatus.DISCONNECTED
    with pytest.raises(ClientError):
        await anext(client.snapshots())
    await client.close()


async def test_fresh_token_after_4401_connects(start_gateway: StartGateway, signer: Signer) -> None:
    srv = await start_gateway()
    tokens = iter(
        [
            sign_token(signer, "7", ttl=60, now=time.time() - 3600),  # long expired
            sign_token(signer, "7", ttl=60),
        ]
    )
    client = GameSyncClient(ws_url(srv), lambda: next(tokens), backoff_base=10.0)
    await asyncio.wait_for(client.connect(), 5)
    assert client.status is ClientStatus.CONNECTED
    await client.close()


async def test_failing_token_provider_is_retried_with_backoff(
    start_gateway: StartGateway, signer: Signer
) -> None:
    srv = await start_gateway()
    delays: list[float] = []
    calls = 0

    async def no_wait(delay: float) -> None:
        delays.append(delay)

    def provider() -> str:
        nonlocal calls
        calls += 1
        if calls == 1:
            raise RuntimeError("auth service down")
        return sign_token(signer, "7", ttl=60)

    recorder = Recorder()
    client = GameSyncClient(
        ws_url(srv), provider, rng=lambda: 0.5, sleep=no_wait, on_status=recorder.on_status
    )
    await asyncio.wait_for(client.connect(), 5)
    reconnecting = [e for s, e in recorder.statuses if s is ClientStatus.RECONNECTING]
    assert [e.code for e in reconnecting if e is not None] == ["token_unavailable"]
    assert delays == [0.25]
    assert calls == 2
    await client.close()


async def test_forbidden_game_is_dropped_and_the_others_keep_flowing(
    start_gateway: StartGateway, signer: Signer
) -> None:
    srv = await start_gateway(authz="claim")
    recorder = Recorder()
    client = GameSyncClient(ws_url(srv), token_for(signer, games=[1]), on_error=recorder.on_error)
    await client.connect()
    await client.subscribe(2)
    await client.subscribe(1)
    await recorder.wait_for(lambda: any(e.code == "forbidden" for e in recorder.errors))
    (error,) = recorder.errors
    assert error.game_id == 2
    assert client.games == {1}
    await publish(srv, 1, 1)
    assert (await next_snapshot(client.snapshots())).game_id == 1
    assert client.status is ClientStatus.CONNECTED
    await client.close()


async def test_forbidden_implied_game_stops_the_client(
    start_gateway: StartGateway, signer: Signer
) -> None:
    srv = await start_gateway(authz="claim")
    url = ws_url(srv).replace("/ws", "/ws/games/9")
    recorder = Recorder()
    client = GameSyncClient(
        url, token_for(signer, games=[1]), backoff_base=0.01, on_status=recorder.on_status
    )
    await client.connect()  # welcome comes first, then the implied subscribe is refused
    await recorder.wait_for(lambda: client.status is ClientStatus.DISCONNECTED)
    assert client.error is not None
    assert (client.error.code, client.error.close_code) == ("forbidden", 4403)
    assert recorder.count(ClientStatus.CONNECTED) == 1  # no retry loop
    with pytest.raises(ClientError, match="forbidden"):
        await anext(client.snapshots())
    await client.close()


def test_client_refuses_a_non_websocket_url() -> None:
    with pytest.raises(ValueError, match="ws://"):
        GameSyncClient("ftp://example.invalid/ws", lambda: "t")
    assert GameSyncClient("http://127.0.0.1:1/ws", lambda: "t").url == "ws://127.0.0.1:1/ws"


async def test_subscribe_refuses_a_bad_game_id() -> None:
    client = GameSyncClient("ws://127.0.0.1:1/ws", lambda: "t")
    with pytest.raises(ValueError, match="game id"):
        await client.subscribe(True)
    with pytest.raises(ValueError, match="game id"):
        await client.subscribe(-1)
