"""Protocol 2's deltas over the wire, for both transports (DESIGN §2): asked for per
connection, sent to a subscriber holding the base, full snapshots otherwise, one user's
private part never in another's delta, and version-1 clients untouched."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest
from feeds import TRANSPORTS, Feed, open_feed
from wire import GatewayFactory, Keys, envelope, publish, wait_until

from gamesync.delta import apply
from gamesync.server import GatewayServer


def game(version: int, **viewers: Any) -> dict[str, Any]:
    """A Nommie-like snapshot: a seating that never changes, scores and a growing history."""
    snapshot = {
        "game": {"seating": [{"seat": s, "name": f"player {s}" * 4} for s in range(4)]},
        "scores": [version, 0, 2 * version, 3],
        "history": [{"trick": t, "cards": ["AS", "KS", "QS", "JS"]} for t in range(version)],
    }
    return envelope(1, version, snapshot=snapshot, viewers=viewers or None)


class Holder:
    """What a protocol-2 client holds: full snapshots replace it, deltas patch it."""

    def __init__(self) -> None:
        self.version: int | None = None
        self.data: Any = None
        self.viewer: Any = None
        self.kinds: list[str] = []

    def take(self, message: dict[str, Any]) -> None:
        if message["type"] == "snapshot":
            self.data, self.viewer = message["data"], message.get("viewer")
        else:
            assert message["type"] == "delta"
            assert message["version"] == 2
            assert message["baseVersion"] == self.version, "a delta only onto what is held"
            self.data = apply(self.data, message["patch"])
            if "viewer" in message:
                self.viewer = message["viewer"]
            elif "viewerPatch" in message:
                self.viewer = apply(self.viewer, message["viewerPatch"])
        self.version = message["gameVersion"]
        self.kinds.append(message["type"])


async def follow(feed: Feed, holder: Holder, version: int) -> None:
    while holder.version != version:
        message = await feed.recv()
        if message["type"] in ("snapshot", "delta"):
            holder.take(message)


@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_a_client_asking_for_deltas_gets_them_and_holds_each_full_snapshot(
    gateway: GatewayServer, keys: Keys, transport: str
) -> None:
    await publish(gateway, game(1, **{"7": {"hand": ["AS", "KD", "2C"]}}))
    async with await open_feed(gateway, transport, keys.token("7"), 1, query="delta=1") as feed:
        welcome = await feed.recv()
        assert welcome["delta"] is True
        holder = Holder()
        await follow(feed, holder, 1)
        for version in range(2, 7):
            hand = ["AS", "KD", "2C"][: 4 - version % 4]
            doc = game(version, **{"7": {"hand": hand}})
            await publish(gateway, doc)
            await follow(feed, holder, version)
            assert holder.data == doc["snapshot"]
            assert holder.viewer == {"hand": hand}
        assert holder.kinds == ["snapshot"] + ["delta"] * 5
    stats = gateway.gateway.hub.stats
    assert stats.delta_deliveries == 5


async def test_the_first_message_auth_can_ask_for_deltas(
    gateway: GatewayServer, keys: Keys
) -> None:
    await publish(gateway, game(1))
    async with await open_feed(gateway, "websocket", None) as feed:
        await feed.send({"type": "auth", "token": keys.token(), "delta": True})
        assert (await feed.recv())["delta"] is True
        await feed.send({"type": "subscribe", "gameId": 1})
        holder = Holder()
        await follow(feed, holder, 1)
        await publish(gateway, game(2))
        await follow(feed, holder, 2)
        assert holder.kinds == ["snapshot", "delta"]


@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_a_version_1_client_next_to_a_delta_client_sees_exactly_what_it_always_did(
    gateway: GatewayServer, keys: Keys, transport: str
) -> None:
    await publish(gateway, game(1))
    async with (
        await open_feed(gateway, transport, keys.token("1"), 1) as old,
        await open_feed(gateway, transport, keys.token("2"), 1, query="delta=1") as new,
    ):
        assert "delta" not in await old.recv()
        await new.recv()
        await old.until(lambda m: m["type"] == "snapshot")
        holder = Holder()
        await follow(new, holder, 1)
        await publish(gateway, game(2))
        assert await old.recv() == {
            "type": "snapshot",
            "version": 1,
            "gameId": 1,
            "gameVersion": 2,
            "data": game(2)["snapshot"],
        }
        await follow(new, holder, 2)
        assert holder.kinds == ["snapshot", "delta"]


@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_a_users_delta_carries_only_that_users_private_part(
    gateway: GatewayServer, keys: Keys, transport: str
) -> None:
    """The public patch is shared; each viewer patch is its user's own."""
    hands = {"7": ["7C", "8C"], "8": ["2D", "3D"], "9": ["4H"]}  # none in the public part
    await publish(gateway, game(1, **{u: {"hand": h} for u, h in hands.items()}))
    feeds = {
        u: await open_feed(gateway, transport, keys.token(u), 1, query="delta=1") for u in "789"
    }
    spectator = await open_feed(gateway, transport, keys.token("10"), 1, query="delta=1")
    try:
        holders = {u: Holder() for u in [*feeds, "10"]}
        for user, feed in [*feeds.items(), ("10", spectator)]:
            await follow(feed, holders[user], 1)
        later = {"7": ["7C"], "8": ["2D", "3D", "TC"], "9": ["4H"]}
        await publish(gateway, game(2, **{u: {"hand": h} for u, h in later.items()}))
        raw: dict[str, dict[str, Any]] = {}
        for user, feed in [*feeds.items(), ("10", spectator)]:
            message = await feed.recv()
            raw[user] = message
            holders[user].take(message)
        for user in feeds:
            assert holders[user].viewer == {"hand": later[user]}
            theirs = {c for u in hands if u != user for c in [*hands[u], *later[u]]}
            assert not any(card in json.dumps(raw[user]) for card in theirs), raw[user]
        assert "viewer" not in raw["9"]  # an unchanged hand: nothing private in the delta
        assert "viewerPatch" not in raw["9"]
        assert holders["10"].viewer is None
        assert {m["type"] for m in raw.values()} == {"delta"}
        assert len({json.dumps(m["patch"]) for m in raw.values()}) == 1  # one public patch
    finally:
        for feed in [*feeds.values(), spectator]:
            await feed.aclose()


@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_a_slow_delta_client_gets_a_full_snapshot_after_conflation(
    gateway_factory: GatewayFactory, keys: Keys, transport: str
) -> None:
    server = await gateway_factory(slow_client_seconds=30)
    await publish(server, game(1))
    slow = await open_feed(server, transport, keys.token("s"), 1, rcvbuf=4096, query="delta=1")
    try:
        session = await _session(server, "s")
        pad = "y" * 200_000  # each version changes it whole: every frame is this large
        last = 1
        for version in range(2, 42):  # bounded: 40 x 200 KB at most
            doc = game(version)
            doc["snapshot"]["pad"] = pad + str(version)
            await publish(server, doc)
            last = version
            if session.socket.unwritable_since is not None:
                break
        assert session.socket.unwritable_since is not None
        for version in range(last + 1, last + 4):
            doc = game(version)
            doc["snapshot"]["pad"] = pad + str(version)
            await publish(server, doc)
            last = version
        assert server.gateway.hub.stats.conflated >= 1
        holder = Holder()
        async with asyncio.timeout(20):
            await follow(slow, holder, last)
        assert holder.data["pad"] == pad + str(last)
        assert holder.kinds[-1] == "snapshot", "the frame after conflation is the full one"
    finally:
        await slow.aclose()


async def _session(server: GatewayServer, user: str) -> Any:
    registry = server.gateway.registry
    await wait_until(
        lambda: any(m.conn.user_id == user and m.conn.subscriptions for m in registry.members())
    )
    return next(m for m in registry.members() if m.conn.user_id == user)
