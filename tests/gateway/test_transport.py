"""gamesync.transport over the wire: closes that always finish, and backpressure both ways."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import json
from collections import deque
from collections.abc import AsyncIterator
from urllib.parse import urlsplit

import pytest
from rawws import RawClient
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from websockets.protocol import State
from wire import (
    GatewayFactory,
    Keys,
    connect,
    envelope,
    publish,
    recv_until,
    serve_app,
    wait_until,
)

from gamesync.bench import wire
from gamesync.server import GatewayServer
from gamesync.session import WebSocketSession as Session
from gamesync.transport import CONTROL_FRAMES_BURST, MAX_FRAGMENTS, PARSE_SLICE, GatewaySocket

#: A short close bound keeps these tests quick (the default is 5 s).
CLOSE_FAST = {"close_timeout": 1}


def _address(server: GatewayServer) -> tuple[str, int]:
    parts = urlsplit(server.public_url)
    assert parts.hostname is not None
    assert parts.port is not None
    return parts.hostname, parts.port


@contextlib.asynccontextmanager
async def stalled_backend(stalled: int) -> AsyncIterator[tuple[str, asyncio.Event]]:
    """A `backend` policy URL allowing every game, but holding game `stalled` until the end."""
    asked, release = asyncio.Event(), asyncio.Event()

    async def decide(request: Request) -> Response:
        if int(request.path_params["game"]) == stalled:
            asked.set()
            await release.wait()
        return JSONResponse({})

    async with serve_app(Starlette(routes=[Route("/games/{game}", decide)])) as base:
        try:
            yield f"{base}/games/{{gameId}}", asked
        finally:
            release.set()


async def test_a_close_after_the_clients_close_frame_keeps_the_sweeper_alive(
    gateway_factory: GatewayFactory, keys: Keys
) -> None:
    """Issue 12.1: the client's close frame was processed, the session has not read it yet.

    The session waits on a stalled authorization backend, so it has not read the disconnect;
    the transport still holds snapshots the client never read, so it is not gone either. The
    sweeper's token-expiry close then met a protocol already CLOSING: `send_close` raised
    InvalidState, the sweeper died and the pod stayed unready for good; and the transport
    lingered, holding its buffer, since nothing ever aborted it.
    """
    async with stalled_backend(stalled=1) as (url, asked):
        server = await gateway_factory(
            authz="backend",
            authz_url=url,
            authz_timeout_seconds=30,
            leeway_seconds=0,
            **CLOSE_FAST,
        )
        gw = server.gateway
        token = keys.token(ttl=4)  # its expiry is what makes the sweeper close the session
        async with await RawClient.connect(*_address(server), "/ws", token, limit=1024) as client:
            await wait_until(lambda: len(gw.registry) == 1, what="the session")
            session = gw.registry.members()[0]
            assert isinstance(session, Session)
            socket = session.socket
            # No backpressure for this socket: its buffer holds what the client does not read.
            socket.transport.set_write_buffer_limits(high=1 << 30)
            client.send_text(json.dumps({"type": "subscribe", "gameId": 2}))
            await wait_until(lambda: 2 in session.conn.subscriptions, what="game 2")
            for version in range(1, 201):  # bounded: 200 x 100 KB at most
                await publish(server, envelope(2, version, snapshot={"pad": "x" * 100_000}))
                if socket.transport.get_write_buffer_size() > 0:
                    break
            assert socket.transport.get_write_buffer_size() > 0
            client.send_text(json.dumps({"type": "subscribe", "gameId": 1}))
            await asyncio.wait_for(asyncio.shield(asked.wait()), 5)
            client.send_close(1000)
            await client.writer.drain()
            await wait_until(lambda: socket.conn.state is not State.OPEN, what="close read")
            # The token expires: the sweeper closes the session and must survive doing so; the
            # transport is let go within the close bound.
            await wait_until(lambda: socket.disconnected, timeout=10, what="transport gone")
            assert gw.ready, gw.not_ready_reasons()
            assert all(not task.done() for task in gw.tasks), "a background task ended"


async def test_a_ping_flood_that_never_reads_holds_no_growing_buffer(
    gateway_factory: GatewayFactory,
) -> None:
    """Issue 12.2: pongs are conflated, and nothing is read while the socket is unwritable.

    An unauthenticated client sent pings and never read the pongs: every pong queued in the
    transport's buffer (5 such sockets flooding 59 MB held 92 MB of a gateway's memory).
    """
    server = await gateway_factory(auth_timeout=30)
    gw = server.gateway
    async with await RawClient.connect(
        *_address(server), "/ws", None, limit=1024, rcvbuf=4096
    ) as client:
        await wait_until(lambda: len(gw.registry) == 1, what="the session")
        socket = gw.registry.members()[0].conn.socket
        assert isinstance(socket, GatewaySocket)
        payload = b"p" * 125
        sent = 0
        largest = 0
        loop = asyncio.get_running_loop()
        deadline = loop.time() + 10
        while sent < 8_000_000 and loop.time() < deadline:  # bounded in bytes and time
            for _ in range(256):
                client.send_ping(payload)
            sent += 256 * 131
            try:
                await asyncio.wait_for(client.writer.drain(), 0.5)
            except TimeoutError:
                pass
            except ConnectionError:  # closed 1008 over its control-frame budget: fine too
                break
            largest = max(largest, socket.transport.get_write_buffer_size())
        # Not one pong per ping: a few KB at most, however much was sent.
        assert largest < 64 * 1024, largest
        assert socket.transport.get_write_buffer_size() < 64 * 1024


def _can_write_as_derived(socket: GatewaySocket) -> bool:
    """What `can_write` stands for (it is kept as a plain attribute for the fan-out)."""
    return socket.unwritable_since is None and socket.is_open


async def test_can_write_follows_the_socket_through_backpressure_and_every_kind_of_close(
    gateway_factory: GatewayFactory, keys: Keys
) -> None:
    """Issue 14: `can_write` is a flag kept by the socket's callbacks, not computed per frame.

    It must change wherever what it stands for changes: a full buffer and its drain, the
    client's close frame (websockets' state, before the session reads the disconnect), the
    server's close, uvicorn's shutdown (a close without `close_sent`) and a lost connection.
    """
    server = await gateway_factory(**CLOSE_FAST)
    gw = server.gateway
    host, port = _address(server)
    clients = [
        # u0 and u1 have small receive buffers, so that their sockets' own buffers fill soon
        await RawClient.connect(
            host,
            port,
            "/ws/games/1",
            keys.token(f"u{i}"),
            limit=1024,
            rcvbuf=4096 if i < 2 else None,
        )
        for i in range(5)
    ]
    try:
        await wait_until(lambda: len(gw.registry) == 5, what="the sessions")
        sockets = {}
        for session in gw.registry.members():
            assert isinstance(session.conn.socket, GatewaySocket)
            sockets[session.conn.user_id] = session.conn.socket
        for client in clients:
            assert (await client.read_frame()).opcode == 1  # welcome
        socket = sockets["u0"]
        assert socket.can_write is True
        assert all(_can_write_as_derived(s) for s in sockets.values())

        # Backpressure: u0 does not read while big snapshots arrive, then reads them all. (u1
        # reads nothing either, and is never paused: its socket holds them for the close below.)
        socket.transport.set_write_buffer_limits(high=4096)
        sockets["u1"].transport.set_write_buffer_limits(high=1 << 30)
        version = 0
        while socket.unwritable_since is None and version < 200:  # bounded
            version += 1
            await publish(server, envelope(1, version, snapshot={"pad": "x" * 64_000}))
        assert socket.unwritable_since is not None
        assert socket.can_write is False
        assert socket.is_open  # unwritable, not closed
        while socket.unwritable_since is not None:
            await clients[0].read_frame()
        assert socket.can_write is True

        # The client's close frame: websockets' state leaves OPEN as the read is parsed, while
        # the transport lingers (until the close bound) with what u1 has not read.
        assert sockets["u1"].transport.get_write_buffer_size() > 0
        clients[1].send_close(1000)
        await wait_until(lambda: sockets["u1"].conn.state is not State.OPEN, what="the close")
        assert sockets["u1"].can_write is False
        assert not sockets["u1"].disconnected

        # The server's close, uvicorn's shutdown, a lost connection.
        assert sockets["u2"].close_now(1000)
        sockets["u3"].shutdown()
        clients[4].writer.transport.abort()
        await wait_until(lambda: sockets["u4"].disconnected, what="the lost connection")
        for user in ("u2", "u3", "u4"):
            assert sockets[user].can_write is False, user
        for user, s in sockets.items():
            assert s.can_write is _can_write_as_derived(s), user
    finally:
        for client in clients:
            client.close()


async def test_a_ping_flood_is_closed_1008_after_its_control_frame_budget(
    gateway_factory: GatewayFactory, keys: Keys
) -> None:
    """Hostile clients: every ping is parsed and answered, so a flood costs the pod's core
    whatever rate the client chooses; beyond its budget the socket is closed."""
    server = await gateway_factory()
    async with await RawClient.connect(*_address(server), "/ws", keys.token()) as client:
        for _ in range(4 * CONTROL_FRAMES_BURST):
            client.send_ping(b"p" * 125)
        close = await client.read_until_close()
        assert close.close_code == 1008
        assert b"too many control frames" in close.payload


async def test_pings_within_the_budget_are_all_answered(
    gateway_factory: GatewayFactory, keys: Keys
) -> None:
    server = await gateway_factory()
    async with await RawClient.connect(*_address(server), "/ws", keys.token()) as client:
        assert json.loads((await client.read_frame()).payload)["type"] == "welcome"
        pongs = 0
        for i in range(CONTROL_FRAMES_BURST - 5):
            client.send_ping(b"%d" % i)
            frame = await client.read_frame()
            assert frame.opcode == wire.OP_PONG, frame
            pongs += 1
        client.send_text('{"type":"ping"}')
        assert json.loads((await client.read_frame()).payload)["type"] == "pong"
        assert pongs == CONTROL_FRAMES_BURST - 5


async def test_a_message_in_endless_fragments_is_closed_1008_after_the_fragment_budget(
    gateway_factory: GatewayFactory, keys: Keys
) -> None:
    server = await gateway_factory()
    async with await RawClient.connect(*_address(server), "/ws", keys.token()) as client:
        client.writer.write(wire.client_frame(wire.OP_TEXT, b"{", fin=False))
        client.writer.write(wire.client_frame(wire.OP_CONT, b" ", fin=False) * (2 * MAX_FRAGMENTS))
        close = await client.read_until_close()
        assert close.close_code == 1008
        assert b"too many fragments" in close.payload


async def test_a_message_in_a_few_fragments_is_received_whole(
    gateway_factory: GatewayFactory, keys: Keys
) -> None:
    server = await gateway_factory()
    async with await RawClient.connect(*_address(server), "/ws", keys.token()) as client:
        assert json.loads((await client.read_frame()).payload)["type"] == "welcome"
        parts = [b'{"type"', b':"pi', b'ng"}']
        client.writer.write(wire.client_frame(wire.OP_TEXT, parts[0], fin=False))
        client.writer.write(wire.client_frame(wire.OP_CONT, parts[1], fin=False))
        client.writer.write(wire.client_frame(wire.OP_CONT, parts[2]))
        assert json.loads((await client.read_frame()).payload)["type"] == "pong"


async def test_one_read_of_many_messages_is_handled_over_many_loop_turns(
    gateway_factory: GatewayFactory, keys: Keys
) -> None:
    """Hostile clients: a read holding a thousand small messages was parsed and handled in one
    turn of the event loop (the session took them from its queue without ever waiting), so
    every other connection waited for all of them. Now a turn handles at most a slice's worth,
    and another connection's message is handled long before the flood is."""
    server = await gateway_factory(message_rate=10_000, message_burst=10_000)
    gw = server.gateway
    address = _address(server)
    flooder = await RawClient.connect(*address, "/ws", keys.token("flooder"))
    other = await RawClient.connect(*address, "/ws", keys.token("other"))
    try:
        for client in (flooder, other):
            assert json.loads((await client.read_frame()).payload)["type"] == "welcome"
        await wait_until(lambda: len(gw.registry) == 2, what="both sessions")
        by_user = {}
        for session in gw.registry.members():
            assert session.conn.identity is not None
            by_user[session.conn.identity.user_id] = session.conn
        flood, calm = by_user["flooder"], by_user["other"]
        messages = 1000
        ping = wire.client_frame(wire.OP_TEXT, b'{"type":"ping"}', mask=b"\x01\x02\x03\x04")
        flooder.writer.write(ping * messages)  # one write: ~21 KB, one or a few reads
        other.send_text('{"type":"ping"}')
        # A probe that runs once per loop turn: how many of the flood's messages each turn
        # handled, and how far the flood was when the other connection's message was handled.
        loop = asyncio.get_running_loop()
        deadline = loop.time() + 10
        done: asyncio.Future[None] = loop.create_future()
        steps: list[int] = []
        flood_at_other: list[int] = []
        last = flood.frames_in

        def probe() -> None:
            nonlocal last
            steps.append(flood.frames_in - last)
            last = flood.frames_in
            if calm.frames_in and not flood_at_other:
                flood_at_other.append(flood.frames_in)
            if (flood.frames_in >= messages and flood_at_other) or loop.time() > deadline:
                done.set_result(None)
            else:
                loop.call_soon(probe)

        loop.call_soon(probe)
        await done
        assert flood.frames_in == messages, flood.frames_in
        # A slice of 512 bytes holds at most 24 of these 21-byte messages.
        assert max(steps) <= PARSE_SLICE // len(ping) + 1, max(steps)
        assert flood_at_other, "the other connection's message was never handled"
        assert flood_at_other[0] < messages // 2, flood_at_other
        assert json.loads((await other.read_frame()).payload)["type"] == "pong"
    finally:
        flooder.close()
        other.close()


async def test_a_socket_closed_over_its_budget_reads_nothing_more(
    gateway_factory: GatewayFactory, keys: Keys
) -> None:
    """Hostile clients: after the 1008 the rest was not parsed, but the transport kept reading
    it, so a peer went on pushing at loopback speed (1.4 GB in 30 s from 60 sockets) until the
    close bound. Reading stops with the close: the peer can push only what the kernel's
    buffers take."""
    server = await gateway_factory(close_timeout=10)
    client = await RawClient.connect(
        *_address(server),
        "/ws",
        keys.token(),
    )
    try:
        chunk = wire.client_frame(wire.OP_CONT, b" ", fin=False) * 4096  # 28 KiB of fragments
        client.writer.write(wire.client_frame(wire.OP_TEXT, b"{", fin=False) + chunk)
        close = await client.read_until_close()
        assert close.close_code == 1008
        loop = asyncio.get_running_loop()
        pushed = 0
        deadline = loop.time() + 3
        while pushed < 256 << 20 and loop.time() < deadline:  # bounded in bytes and time
            client.writer.write(chunk)
            try:
                await asyncio.wait_for(client.writer.drain(), max(0.01, deadline - loop.time()))
            except TimeoutError:
                break  # the gateway reads no more: the buffers are full
            except ConnectionError:
                break
            pushed += len(chunk)
        # What the kernel's buffers take on both sides; reading on, it would be 256 MiB.
        assert pushed < 4 << 20, pushed
    finally:
        client.close()


async def test_an_idle_connection_holds_no_empty_queues(gateway: GatewayServer, keys: Keys) -> None:
    """Issue 14.6: CPython gives every deque a 64-slot block (~0.7 KiB). The ASGI inbox and
    the writability event uvicorn keeps per socket each held an empty one for as long as the
    connection lived: ~1.5 KiB of a ~14 KiB idle connection."""
    gw = gateway.gateway
    async with await connect(gateway, token=keys.token()) as ws:
        await ws.send('{"type":"subscribe","gameId":1}')
        await recv_until(ws, lambda m: m["type"] == "subscribed")
        await wait_until(lambda: len(gw.registry) == 1, what="the session")
        socket = gw.registry.members()[0].conn.socket
        assert isinstance(socket, GatewaySocket)
        held = [o for o in gc.get_referents(socket.queue, socket.writable) if type(o) is deque]
        assert held == []
        # ... and both still work as uvicorn uses them.
        socket.writable.clear()
        waiting = asyncio.ensure_future(socket.writable.wait())
        with pytest.raises(TimeoutError):  # blocked while cleared
            await asyncio.wait_for(asyncio.shield(waiting), 0.05)
        socket.writable.set()
        assert await asyncio.wait_for(waiting, 1) is True
        assert await asyncio.wait_for(socket.writable.wait(), 1) is True
