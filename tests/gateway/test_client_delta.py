"""The Python client's deltas (protocol 2), property-tested: over random snapshot sequences with
conflation, gaps, stale bases and reconnects, with patches made by the gateway's own
`gamesync.delta.diff`, the state the client holds always equals the full snapshot of the
version it reports, and a delta that does not fit makes it subscribe again."""

from __future__ import annotations

from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from gamesync.client import GameSyncClient
from gamesync.delta import diff

values = st.recursive(
    st.none() | st.booleans() | st.integers(-5, 5) | st.sampled_from(["AS", "KD", "x"]),
    lambda inner: st.lists(inner, max_size=5) | st.dictionaries(st.sampled_from("abcd"), inner),
    max_leaves=12,
)
documents = st.dictionaries(st.sampled_from(["game", "hand", "history", "phase"]), values)
#: what happens to each version on its way: delivered (as a delta when the client holds its
#: base), conflated away, delivered after a reconnect, or a delta from a base the client lacks
fates = st.sampled_from(["delivered", "delivered", "delivered", "conflated", "reconnect", "stale"])


def client() -> GameSyncClient:
    c = GameSyncClient("ws://127.0.0.1:9/ws", lambda: "token", delta=True)
    c._games.add(1)  # subscribed (the wire is another test's business)
    return c


def full(version: int, data: Any, viewer: Any) -> dict[str, Any]:
    return {"type": "snapshot", "gameId": 1, "gameVersion": version, "data": data, "viewer": viewer}


@settings(max_examples=150, deadline=None)
@given(st.lists(st.tuples(documents, documents, fates), min_size=1, max_size=25))
def test_the_state_held_is_the_full_snapshot_of_its_version(
    steps: list[tuple[Any, Any, str]],
) -> None:
    c = client()
    history: dict[int, tuple[Any, Any]] = {}
    delivered: int | None = None  # what the gateway believes this connection holds
    for version, (data, viewer, fate) in enumerate(steps, start=1):
        history[version] = (data, viewer)
        if fate == "conflated":
            delivered = None  # a parked frame replaced: the next one goes in full
            continue
        if fate == "reconnect":
            c._resync.clear()
            delivered = None  # a new subscription starts with the latest, in full
        if delivered is None:
            c._handle(full(version, data, viewer))
        else:
            base = delivered - 1 if fate == "stale" and delivered > 1 else delivered
            old_data, old_viewer = history[base]
            c._handle(
                {
                    "type": "delta",
                    "gameId": 1,
                    "gameVersion": version,
                    "baseVersion": base,
                    "patch": diff(old_data, data),
                    "viewerPatch": diff(old_viewer, viewer),
                }
            )
            if base != delivered:
                assert 1 in c._resync, "a delta from a base the client lacks: subscribe again"
                c._resync.clear()
                c._handle(full(version, data, viewer))  # the new subscription's first frame
        delivered = version
        held = c._held[1]
        assert held.game_version == version
        assert (held.data, held.viewer) == history[version]
        assert c._inbox[1] == held  # what the consumer gets next


def test_a_delta_for_a_game_not_held_asks_for_the_full_snapshot() -> None:
    c = client()
    c._handle({"type": "delta", "gameId": 1, "gameVersion": 3, "baseVersion": 2, "patch": []})
    assert 1 in c._resync
    assert 1 not in c._held
    assert not c._inbox


def test_a_patch_that_does_not_fit_asks_for_the_full_snapshot_and_keeps_the_state() -> None:
    c = client()
    c._handle(full(2, {"a": 1}, None))
    c._handle(
        {
            "type": "delta",
            "gameId": 1,
            "gameVersion": 3,
            "baseVersion": 2,
            "patch": [{"op": "remove", "path": "/missing"}],
        }
    )
    assert 1 in c._resync
    assert c._versions[1] == 2
