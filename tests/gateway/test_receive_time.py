"""The broker's receive time (`gamesync_broker_receive_seconds_total`): the pub/sub read
callback's own time, the fan-outs' writes inside it left out (issue 14.4)."""

from __future__ import annotations

import json
from time import perf_counter
from typing import Any

from standins import StandInSocket

from gamesync.broker.memory import MemoryBroker
from gamesync.broker.redis.stream import PubSubStream
from gamesync.connection import Connection
from gamesync.envelope import parse_envelope
from gamesync.hub import Hub, Topic

#: CPU each frame write burns in the slow socket below: far more than parsing an envelope.
WRITE_SECONDS = 0.002


class SlowSocket(StandInSocket):
    """A socket whose every write costs WRITE_SECONDS of CPU (a bounded busy loop)."""

    def write_frame(self, frame: bytes) -> None:
        until = perf_counter() + WRITE_SECONDS
        while perf_counter() < until:
            pass
        super().write_frame(frame)


def message(game_id: int, version: int) -> bytes:
    """A pub/sub `message` reply carrying an envelope, as Redis sends it."""
    data = json.dumps({"gameId": game_id, "version": version, "snapshot": {"v": version}}).encode()
    parts = (b"message", b"game:{%d}" % game_id, data)
    return b"*3\r\n" + b"".join(b"$%d\r\n%s\r\n" % (len(part), part) for part in parts)


def hub_with_subscribers(game_id: int, count: int) -> Hub:
    hub = Hub(MemoryBroker())
    topic = Topic(game_id)
    topic.ready.set()
    hub.topics[game_id] = topic
    for _ in range(count):
        conn = Connection(SlowSocket(), 0.0, hub.stats)
        conn.subscriptions[game_id] = 0
        topic.add(conn)
    return hub


def offering(hub: Hub) -> Any:
    """The stream's handler: each message's envelope to the hub (what the Redis broker does)."""

    def handle(replies: list[Any]) -> None:
        for reply in replies:
            hub.offer(parse_envelope(reply[2]))

    return handle


async def test_the_receive_time_counts_the_read_path_but_not_the_fan_outs_writes() -> None:
    hub = hub_with_subscribers(7, count=2)
    stats = hub.broker.stats
    stream = PubSubStream(offering(hub), stats)
    stream.data_received(b"".join(message(7, version) for version in range(1, 6)))
    assert hub.stats.deliveries == 10
    assert stats.reads == 1  # five envelopes, one read
    # ten writes of 2 ms each went to the fan-outs' time ...
    assert stats.fanout_seconds >= 10 * WRITE_SECONDS
    # ... and not to the receive path's, which is what parsing five envelopes costs
    assert 0 < stats.receive_seconds < stats.fanout_seconds / 2


async def test_every_read_adds_its_time() -> None:
    hub = hub_with_subscribers(7, count=0)
    stats = hub.broker.stats
    stream = PubSubStream(offering(hub), stats)
    stream.data_received(message(7, 1))
    first = stats.receive_seconds
    stream.data_received(message(7, 2))
    assert 0 < first < stats.receive_seconds


async def test_an_envelope_for_no_local_game_costs_no_fan_out_time() -> None:
    hub = hub_with_subscribers(7, count=1)
    hub.offer(parse_envelope(message(8, 1).split(b"\r\n")[6]))
    assert hub.stats.unrouted == 1
    assert hub.broker.stats.fanout_seconds == 0
