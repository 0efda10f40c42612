"""Events about a GameSyncCluster, as the API server takes them."""

from __future__ import annotations

import datetime as dt

import kubernetes_validate

from gamesync_operator.events import Event, event_body
from gamesync_operator.triggers import ClusterKey

KEY = ClusterKey("games", "arena", "uid-1")
NOW = dt.datetime(2026, 12, 1, 12, 0, 0, 123456, tzinfo=dt.UTC)


def test_an_event_names_its_cluster_and_passes_the_strict_schema() -> None:
    body = event_body(KEY, Event("Normal", "Rebalancing", "moving 400"), NOW)
    kubernetes_validate.validate(body, "1.30.0", strict=True)
    assert body["involvedObject"] == {
        "apiVersion": "gamesync.nommie.dev/v1alpha1",
        "kind": "GameSyncCluster",
        "name": "arena",
        "namespace": "games",
        "uid": "uid-1",
    }
    assert body["metadata"]["name"].startswith("arena.")
    assert body["lastTimestamp"] == "2026-12-01T12:00:00Z"


def test_events_made_at_one_instant_get_different_names_and_long_messages_are_cut() -> None:
    one = event_body(KEY, Event("Warning", "X", "a" * 5000), NOW, seq=0)
    two = event_body(KEY, Event("Warning", "X", "b"), NOW, seq=1)
    assert one["metadata"]["name"] != two["metadata"]["name"]
    assert len(one["message"]) == 1024
