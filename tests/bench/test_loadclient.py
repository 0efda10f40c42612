"""The load client: its accounting per (connection, game) and where it places connections."""

from __future__ import annotations

from typing import Any

import pytest

from gamesync.bench.loadclient import ClientConfig, Conn, LoadClient
from gamesync.shards import shard_of


def snapshot(game: int, version: int, t: float = 1.0) -> bytes:
    return b'{"type":"snapshot","version":1,"gameId":%d,"gameVersion":%d,"data":{"t":%f}}' % (
        game,
        version,
        t,
    )


async def test_versions_are_counted_once_in_order_within_the_published_range() -> None:
    client = LoadClient(ClientConfig(kind="raw", targets=[("127.0.0.1", 9)], count=2, games=1))
    a, b = Conn(client, 0, "127.0.0.1", 9), Conn(client, 1, "127.0.0.1", 9)
    client.conns = [a, b]
    client.begin({"1": 5})
    a._snapshot(snapshot(1, 4), 10.0)  # the latest-on-subscribe from before the range
    for v in (5, 6, 6, 4, 8):  # a duplicate, an old one, and 7 skipped
        a._snapshot(snapshot(1, v, t=9.5), 10.0)
    b._snapshot(snapshot(1, 5), 10.0)  # b never gets 6..8
    report = client.report({"1": 8})
    assert report["delivered"] == 4
    assert report["before_range"] == 1
    assert report["duplicates"] == 1
    assert report["out_of_order"] == 1
    assert report["skipped"] == 1 + 3  # a skipped 7; b misses 6, 7, 8
    assert report["lost"] == 1  # b never reached version 8
    assert report["expected"] == 8
    assert report["samples"] == 4


async def test_excluded_connections_stay_out_of_the_totals() -> None:
    client = LoadClient(ClientConfig(kind="raw", targets=[("127.0.0.1", 9)], count=1, games=1))
    slow = Conn(client, 0, "127.0.0.1", 9)
    client.conns = [slow]
    client.begin({"1": 1})
    slow.excluded = True
    slow._snapshot(snapshot(1, 1), 1.0)
    report = client.report({"1": 3})
    assert report["delivered"] == 0
    assert report["lost"] == 0
    assert report["slow"][0]["delivered"] == 1


def _config(placement: str, **extra: Any) -> ClientConfig:
    targets = [("127.0.0.1", 1000 + i) for i in range(4)]
    return ClientConfig("gamesync", targets, count=32, games=8, placement=placement, **extra)


@pytest.mark.parametrize("placement", ["spread", "game", "affine"])
def test_one_pod_alone_gets_exactly_the_connections_its_placement_gives_it(
    placement: str,
) -> None:
    fleet = _config(placement)
    alone = ClientConfig(
        "gamesync", [("127.0.0.1", 1000)], 32, games=8, placement=placement, fleet=4, only=0
    )
    assert alone.servers == fleet.servers == 4
    # the same server for every connection, whether the fleet's other pods run or not
    assert [alone.server_of(i) for i in range(32)] == [fleet.server_of(i) for i in range(32)]
    mine = [i for i in range(32) if fleet.server_of(i) == 0]
    assert len(mine) == 8  # a quarter of the connections, every placement
    games = {fleet.games_of(i)[0] for i in mine}
    if placement == "spread":
        assert games == set(range(1, 9))  # one watcher of every game
    else:
        assert len(games) == 2  # every watcher of a quarter of the games
    if placement == "affine":
        assert all(shard_of(g, 4) == 0 for g in games)
