"""The hub's deltas (protocol 2, issue 15.1): made once per (game, base -> version) on a pod and
shared by every subscriber holding the base; each private part its own user's."""

from __future__ import annotations

import json
from typing import Any

import pytest
from standins import StandInSocket

import gamesync.hub as hub_module
from gamesync.broker.memory import MemoryBroker
from gamesync.connection import Connection
from gamesync.envelope import parse_envelope
from gamesync.hub import Hub, Topic
from gamesync.keys import Identity

PLAYERS = ["p0", "p1"]


def envelope(version: int) -> bytes:
    doc = {
        "gameId": 1,
        "version": version,
        "snapshot": {"v": version, "table": "t" * 300},
        "viewers": {p: {"owner": p, "hand": list(range(version))} for p in PLAYERS},
    }
    return json.dumps(doc).encode()


def last_message(socket: StandInSocket) -> dict[str, Any]:
    """The last text frame written, decoded (an unmasked server frame of any length)."""
    frame = socket.frames[-1]
    size = frame[1] & 0x7F
    header = 2 if size < 126 else 4 if size == 126 else 10
    decoded: dict[str, Any] = json.loads(frame[header:])
    return decoded


def test_a_delta_is_made_once_per_version_and_shared_by_everyone_holding_the_base(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    made: list[Any] = []
    real_diff = hub_module.diff

    def counted(old: Any, new: Any) -> Any:
        made.append(old)
        return real_diff(old, new)

    monkeypatch.setattr(hub_module, "diff", counted)
    hub = Hub(MemoryBroker())
    topic = Topic(1)
    topic.ready.set()
    hub.topics[1] = topic
    sockets: dict[str, StandInSocket] = {}
    for user in [*PLAYERS, *(f"w{i}" for i in range(6))]:
        socket = sockets[user] = StandInSocket()
        conn = Connection(socket, 0.0, hub.stats)
        conn.identity = Identity(user_id=user, expires_at=2**40, games=None, kid=None)
        conn.delta = True
        conn.subscriptions[1] = -1
        topic.add(conn)
    hub.offer(parse_envelope(envelope(1)))
    assert made == []  # the first version goes in full
    for version in (2, 3):
        made.clear()
        hub.offer(parse_envelope(envelope(version)))
        # One public patch for everyone, one private patch per player: never per connection.
        assert len(made) == 1 + len(PLAYERS)
    watchers = [s for user, s in sockets.items() if user not in PLAYERS]
    last = watchers[0].frames[-1]
    assert all(s.frames[-1] is last for s in watchers)  # one frame object, shared
    for player in PLAYERS:
        message = last_message(sockets[player])
        assert message["type"] == "delta"
        assert message["baseVersion"] == 2
        encoded = json.dumps(message)
        assert all(f'"owner": "{p}"' not in encoded for p in PLAYERS if p != player)
    assert last_message(watchers[0])["type"] == "delta"
    assert hub.stats.delta_deliveries == 2 * len(sockets)
