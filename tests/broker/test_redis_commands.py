"""The command side of the Redis brokers: cluster URLs, the bytes a publish sends."""

from __future__ import annotations

import pytest

from gamesync.broker.redis.commands import cluster_startup, publish_payload
from gamesync.envelope import add_field, parse_envelope, stamp_published_at
from gamesync.errors import ConfigError, EnvelopeError

TRACEPARENT = b"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"


def test_published_at_is_added_first_and_every_other_byte_is_kept() -> None:
    tail = b'"gameId":1, "version": 2,"snapshot":{"b":[1, 2]},"traceparent":"%s"}' % TRACEPARENT
    stamped = stamp_published_at(parse_envelope(b" {" + tail + b" "), 1764115200.25)
    assert stamped.raw == b'{"publishedAt":1764115200.25,' + tail
    assert stamped.published_at == 1764115200.25
    assert parse_envelope(stamped.raw) == stamped
    assert stamp_published_at(stamped, 1.0) is stamped  # an envelope that has one keeps it
    assert publish_payload(parse_envelope(b"{" + tail), now=1764115200.25) == stamped.raw
    assert publish_payload(stamped, now=5.0) == stamped.raw
    with pytest.raises(EnvelopeError, match="object"):
        add_field(b"[1]", "publishedAt", 1.0)


def test_cluster_urls_name_every_startup_node() -> None:
    nodes, kwargs = cluster_startup("rediss+cluster://app:s%40cret@10.0.0.1:7000,10.0.0.2:7001")
    assert nodes == [("10.0.0.1", 7000), ("10.0.0.2", 7001)]
    assert kwargs["username"] == "app"
    assert kwargs["password"] == "s@cret"
    assert kwargs["ssl"] is True  # from the scheme table: rediss+cluster is TLS
    assert "ssl" not in cluster_startup("redis+cluster://10.0.0.1:7000")[1]
    with pytest.raises(ConfigError, match="host:port"):
        cluster_startup("redis+cluster://h1,h2:7000")
