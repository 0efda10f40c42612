"""Privacy and order as properties: random envelopes and users through a real Hub + MemoryBroker.

Nobody ever receives another user's `viewer`; a user without a viewer entry gets no `viewer`
key; within each subscription of a connection to a game the versions received strictly increase
(a new subscription starts again from the latest); and every subscriber ends up holding the
newest snapshot of each of its games. With deltas (protocol 2) as well: a delta goes only to a
connection holding its base, applying it gives exactly the full snapshot of its version (the
user's own private part included), and no delta carries another user's private part, through
conflation (unwritable sockets), joins and leaves.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from websockets.client import ClientProtocol
from websockets.frames import Frame, Opcode
from websockets.protocol import State
from websockets.uri import parse_uri

from gamesync.broker.memory import MemoryBroker
from gamesync.connection import Connection, ConnectionState
from gamesync.delta import apply
from gamesync.envelope import Envelope, parse_envelope
from gamesync.framing import Framing
from gamesync.hub import Hub
from gamesync.keys import Identity

USERS = ["1", "2", "7", "10", "alice"]
GAMES = [1, 2, 3]


class RecordingSocket:
    """A stand-in websocket that records frames; writability is switched by the test."""

    framing = Framing.WEBSOCKET

    def __init__(self) -> None:
        self.last_seen = 0.0
        self.unwritable_since: float | None = None
        self.on_writable: Callable[[], None] | None = None
        self.frames: list[bytes] = []
        #: (number of frames written before it, game id) for every fresh subscription
        self.joins: list[tuple[int, int]] = []

    @property
    def is_open(self) -> bool:
        return True

    @property
    def can_write(self) -> bool:
        return self.unwritable_since is None

    def write_frame(self, frame: bytes) -> None:
        self.frames.append(frame)

    def messages(self) -> list[dict[str, Any]]:
        """The frames as a real websocket client reads them."""
        client = ClientProtocol(parse_uri("ws://gw/ws"), state=State.OPEN, max_size=None)
        client.receive_data(b"".join(self.frames))
        events = client.events_received()
        assert client.state is State.OPEN
        out = []
        for event in events:
            assert isinstance(event, Frame)
            assert event.opcode is Opcode.TEXT
            out.append(json.loads(bytes(event.data)))
        return out


@dataclass
class Publish:
    game_id: int
    version: int
    viewers: dict[str, Any] | None


@dataclass
class Join:
    conn: int
    game_id: int


@dataclass
class Leave:
    conn: int
    game_id: int


@dataclass
class Writable:
    conn: int
    writable: bool


def viewers_for(game_id: int, version: int) -> st.SearchStrategy[dict[str, Any] | None]:
    """Viewer maps whose values name their owner, so a leak is visible; null values too."""
    owners = st.sets(st.sampled_from([*USERS, "99", "unknown"]))
    return st.one_of(
        st.none(),
        owners.flatmap(
            lambda users: st.fixed_dictionaries(
                {
                    u: st.one_of(
                        st.just({"owner": u, "game": game_id, "version": version}),
                        st.just(None),
                    )
                    for u in users
                }
            )
        ),
    )


publishes = st.tuples(st.sampled_from(GAMES), st.integers(0, 20)).flatmap(
    lambda gv: viewers_for(*gv).map(lambda viewers: Publish(gv[0], gv[1], viewers))
)
operations = st.lists(
    st.one_of(
        publishes,
        st.builds(Join, st.integers(0, 5), st.sampled_from(GAMES)),
        st.builds(Leave, st.integers(0, 5), st.sampled_from(GAMES)),
        st.builds(Writable, st.integers(0, 5), st.booleans()),
    ),
    max_size=40,
)
owners = st.lists(st.sampled_from(USERS), min_size=1, max_size=6)


@dataclass
class World:
    published: dict[tuple[int, int], Envelope] = field(default_factory=dict)
    latest: dict[int, int] = field(default_factory=dict)


def snapshot_for(version: int) -> dict[str, Any]:
    """A snapshot big enough that a patch is shorter than it (else the full snapshot is sent)."""
    return {"v": version, "table": "t" * 400, "log": list(range(version % 7))}


async def play(
    users: list[str], plan: list[Any], delta: frozenset[int] = frozenset()
) -> tuple[World, list[Connection]]:
    """Play `plan`; the connections whose index is in `delta` ask for deltas."""
    broker = MemoryBroker()
    hub = Hub(broker, linger_seconds=0)
    handled = 0
    expected = 0
    caught_up = asyncio.Event()

    def handler(envelope: Envelope) -> None:
        nonlocal handled
        hub.offer(envelope)
        handled += 1
        if handled == expected:
            caught_up.set()

    await broker.start(handler)
    sockets = [RecordingSocket() for _ in users]
    conns = []
    for user, socket in zip(users, sockets, strict=True):
        conn = Connection(socket, 0.0, hub.stats)
        conn.identity = Identity(user_id=user, expires_at=2**40, games=None, kid=None)
        conn.transition(ConnectionState.OPEN)
        conn.delta = len(conns) in delta
        conns.append(conn)

    world = World()
    for op in plan:
        if isinstance(op, Publish):
            doc = {
                "gameId": op.game_id,
                "version": op.version,
                "snapshot": snapshot_for(op.version),
            }
            if op.viewers is not None:
                doc["viewers"] = op.viewers
            envelope = parse_envelope(json.dumps(doc))
            subscribed = op.game_id in broker.subscribed_games
            if await broker.publish(envelope):
                world.published[(op.game_id, op.version)] = envelope
                world.latest[op.game_id] = op.version
                if subscribed:
                    expected += 1
                    caught_up.clear()
        elif isinstance(op, Join) and op.conn < len(conns):
            conn = conns[op.conn]
            if op.game_id not in conn.subscriptions:  # as the session does
                sockets[op.conn].joins.append((len(sockets[op.conn].frames), op.game_id))
                await hub.join(conn, op.game_id)
                conn.subscriptions[op.game_id] = -1
                hub.send_current(conn, op.game_id)
        elif isinstance(op, Leave) and op.conn < len(conns):
            conn = conns[op.conn]
            if op.game_id in conn.subscriptions:
                conn.forget(op.game_id)
                hub.leave(conn, op.game_id)
        elif isinstance(op, Writable) and op.conn < len(conns):
            socket = sockets[op.conn]
            if op.writable:
                socket.unwritable_since = None
                conn = conns[op.conn]
                conn.flush()
            else:
                socket.unwritable_since = 0.0
    if handled < expected:
        async with asyncio.timeout(5):
            await caught_up.wait()
    for conn, socket in zip(conns, sockets, strict=True):
        socket.unwritable_since = None
        conn.flush()
    await hub.close()
    await broker.stop()
    return world, conns


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(owners, operations)
def test_nobody_receives_another_users_viewer_and_versions_only_increase(
    users: list[str], plan: list[Any]
) -> None:
    world, conns = asyncio.run(play(users, plan))
    for conn in conns:
        user = conn.user_id
        assert user is not None
        assert isinstance(conn.socket, RecordingSocket)
        last: dict[int, int] = {}
        joins = conn.socket.joins
        for index, message in enumerate(conn.socket.messages()):
            for at, joined in joins:
                if at == index:
                    last.pop(joined, None)  # a new subscription starts from the latest again
            assert message["type"] == "snapshot"
            game_id, version = message["gameId"], message["gameVersion"]
            envelope = world.published[(game_id, version)]
            assert message["data"] == envelope.snapshot
            viewers = envelope.viewers or {}
            if user in viewers:
                assert "viewer" in message
                assert message["viewer"] == viewers[user]
            else:
                assert "viewer" not in message
            if isinstance(message.get("viewer"), dict):
                assert message["viewer"]["owner"] == user
            assert version > last.get(game_id, -1)
            last[game_id] = version
        for game_id in conn.subscriptions:
            if game_id in world.latest:
                assert last.get(game_id) == world.latest[game_id]  # converged on the newest


def _rising(plan: list[Any]) -> list[Any]:
    """`plan` with each game's versions mostly rising (by 1 or 2; a stale repeat for 0), so
    that subscribers often hold the base of the next version."""
    last: dict[int, int] = {}
    out: list[Any] = []
    for op in plan:
        if isinstance(op, Publish):
            before = last.get(op.game_id, 0)
            version = before if op.version == 0 else before + 1 + op.version % 2
            last[op.game_id] = version
            op = Publish(op.game_id, version, op.viewers)
        out.append(op)
    return out


#: Publishes where every user has a private part (so it neither comes nor goes: deltas carry it).
seated = st.builds(
    lambda game_id, version: Publish(
        game_id, version, {u: {"owner": u, "game": game_id, "version": version} for u in USERS}
    ),
    st.sampled_from(GAMES),
    st.integers(0, 20),
)
delta_operations = st.lists(
    st.one_of(
        publishes,
        seated,
        seated,
        st.builds(Join, st.integers(0, 5), st.sampled_from(GAMES)),
        st.builds(Leave, st.integers(0, 5), st.sampled_from(GAMES)),
        st.builds(Writable, st.integers(0, 5), st.booleans()),
    ),
    min_size=10,
    max_size=40,
).map(_rising)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(owners, delta_operations, st.sets(st.integers(0, 5), min_size=2))
def test_a_delta_rebuilds_the_full_snapshot_and_never_carries_another_users_view(
    users: list[str], plan: list[Any], delta: set[int]
) -> None:
    world, conns = asyncio.run(play(users, plan, frozenset(delta)))
    for index, conn in enumerate(conns):
        user = conn.user_id
        assert user is not None
        assert isinstance(conn.socket, RecordingSocket)
        others = [u for u in [*USERS, "99", "unknown"] if u != user]
        held: dict[int, tuple[int, Any, Any]] = {}  # game -> (version, data, viewer or absent)
        absent = object()
        joins = conn.socket.joins
        for position, message in enumerate(conn.socket.messages()):
            for at, joined in joins:
                if at == position:
                    held.pop(joined, None)  # a new subscription starts with a full snapshot
            game_id, version = message["gameId"], message["gameVersion"]
            envelope = world.published[(game_id, version)]
            if message["type"] == "delta":
                assert index in delta, "a delta for a connection that did not ask"
                encoded = json.dumps(message, separators=(",", ":"))
                assert not any(f'"owner":"{other}"' in encoded for other in others), message
                assert game_id in held, "a delta before any full snapshot"
                base, data, viewer = held[game_id]
                assert message["baseVersion"] == base, "a delta from a base the client lacks"
                data = apply(data, message["patch"])
                if "viewerPatch" in message:
                    viewer = apply(viewer, message["viewerPatch"])
                elif "viewer" in message:
                    viewer = message["viewer"]
            else:
                assert message["type"] == "snapshot"
                data, viewer = message["data"], message.get("viewer", absent)
            held[game_id] = (version, data, viewer)
            assert data == envelope.snapshot
            viewers = envelope.viewers or {}
            assert viewer == viewers.get(user, absent)
