"""What the Redis brokers log about reaching Redis: where (host:port), whether it ever
connected, once per outage, and never a password."""

from __future__ import annotations

import contextlib
import logging

import pytest
from pods import FAST, eventually

from gamesync.broker import create_broker
from redis_servers import RedisCluster3, RedisServer, free_port

pytestmark = pytest.mark.redis

PASSWORD = "s3cret-Pw"


def messages(caplog: pytest.LogCaptureFixture, text: str) -> list[logging.LogRecord]:
    return [r for r in caplog.records if text in r.getMessage()]


async def test_no_redis_listening_says_cannot_connect_and_lost_only_after_connecting(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG, logger="gamesync")
    port = free_port()
    broker = create_broker(f"redis://:{PASSWORD}@127.0.0.1:{port}/0?{FAST}", latest_ttl_seconds=60)
    await broker.start(lambda envelope: None)
    server = RedisServer(port=port)
    try:
        expected = f"cannot connect to redis at 127.0.0.1:{port} (retrying)"
        await eventually(lambda: len(messages(caplog, expected)) >= 3, what="a few attempts")
        attempts = messages(caplog, expected)
        assert [r.levelno for r in attempts[:3]] == [logging.WARNING, logging.DEBUG, logging.DEBUG]
        assert "Connection refused" in attempts[0].getMessage() or "111" in attempts[0].getMessage()
        assert not messages(caplog, "lost")  # it never connected
        assert not broker.ready

        server.start()
        with contextlib.closing(server.client()) as admin:
            admin.config_set("requirepass", PASSWORD)
        await eventually(lambda: broker.ready, what="connected once Redis listens")
        assert not messages(caplog, "lost")

        server.kill()
        lost = f"pub/sub connection to redis at 127.0.0.1:{port} lost (reconnecting)"
        await eventually(lambda: bool(messages(caplog, lost)), what="the loss logged")
        assert messages(caplog, lost)[0].levelno == logging.WARNING
        assert PASSWORD not in caplog.text
        assert broker.describe() == f"redis://127.0.0.1:{port}/0"
    finally:
        await broker.stop()
        server.stop()


async def test_a_cluster_pod_started_before_its_cluster_logs_it_and_turns_ready_later(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG, logger="gamesync")
    cluster = RedisCluster3()  # ports chosen, nothing listening yet
    nodes = ",".join(f"127.0.0.1:{node.port}" for node in cluster.nodes)
    broker = create_broker(f"redis+cluster://:{PASSWORD}@{nodes}?{FAST}", latest_ttl_seconds=60)
    await broker.start(lambda envelope: None)
    try:
        expected = f"cannot read the slot map from redis cluster redis+cluster://{nodes} (retrying)"
        await eventually(lambda: bool(messages(caplog, expected)), what="the failure logged")
        assert not broker.ready
        # Started from the loop's thread on purpose (see redis_servers._die_with_parent).
        cluster.start()
        for node in cluster.nodes:
            with contextlib.closing(node.client()) as admin:
                admin.config_set("requirepass", PASSWORD)
        await eventually(lambda: broker.ready, timeout=20, what="ready once the cluster is up")
        assert not messages(caplog, "died")  # the topology watcher kept going
        assert PASSWORD not in caplog.text
    finally:
        await broker.stop()
        cluster.stop()
