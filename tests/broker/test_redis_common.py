"""The Redis fan-out's pure parts: names, the script's identity, URL options, stamps, backoff."""

from __future__ import annotations

import hashlib
import random
from importlib import resources
from pathlib import Path

import pytest

from gamesync.broker import PUBLISH_SCRIPT_SHA1
from gamesync.broker._redis_common import (
    BrokerOptions,
    BrokerStats,
    backoff_delay,
    channel_name,
    game_of_channel,
    latest_key,
    split_broker_url,
)
from gamesync.envelope import add_field, parse_envelope, stamp_published_at
from gamesync.errors import ConfigError, EnvelopeError

TRACEPARENT = b"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"


def test_key_and_channel_names_carry_the_game_id_as_hash_tag() -> None:
    assert channel_name(42) == "game:{42}"
    assert latest_key(42) == "game:{42}:latest"
    assert game_of_channel(b"game:{42}") == 42
    assert game_of_channel(b"game:{x}") is None
    assert game_of_channel(b"gamesync:probe:{abc}") is None


def test_the_documented_sha1_is_the_shipped_script_bytes() -> None:
    body = resources.files("gamesync").joinpath("lua/publish.lua").read_bytes()
    assert hashlib.sha1(body).hexdigest() == PUBLISH_SCRIPT_SHA1
    assert body.isascii()  # no encoding question for other languages
    docs = Path(__file__).resolve().parents[2] / "docs" / "publishing.md"
    assert PUBLISH_SCRIPT_SHA1 in docs.read_text()


def test_published_at_is_added_first_and_every_other_byte_is_kept() -> None:
    tail = b'"gameId":1, "version": 2,"snapshot":{"b":[1, 2]},"traceparent":"%s"}' % TRACEPARENT
    stamped = stamp_published_at(parse_envelope(b" {" + tail + b" "), 1764115200.25)
    assert stamped.raw == b'{"publishedAt":1764115200.25,' + tail
    assert stamped.published_at == 1764115200.25
    assert parse_envelope(stamped.raw) == stamped
    assert stamp_published_at(stamped, 1.0) is stamped  # an envelope that has one keeps it
    with pytest.raises(EnvelopeError, match="object"):
        add_field(b"[1]", "publishedAt", 1.0)


def test_broker_url_options_are_ours_and_the_rest_goes_to_redis() -> None:
    url, options = split_broker_url("redis://:pw@h:6379/0?probe_interval=1.5&ssl_cert_reqs=none")
    assert url == "redis://:pw@h:6379/0?ssl_cert_reqs=none"
    assert options == BrokerOptions(probe_interval=1.5)
    assert split_broker_url("redis+cluster://a:1,b:2")[0] == "redis+cluster://a:1,b:2"
    with pytest.raises(ConfigError, match="positive"):
        split_broker_url("redis://h/0?probe_timeout=0")
    with pytest.raises(ConfigError, match="number"):
        split_broker_url("redis://h/0?reconnect_cap=soon")


def test_backoff_is_jittered_and_capped() -> None:
    rng = random.Random(1)
    delays = [backoff_delay(n, base=0.2, cap=5.0, rng=rng) for n in range(40)]
    assert all(0.1 <= d <= 5.0 for d in delays)
    assert max(delays[:2]) <= 0.4
    assert len({round(d, 6) for d in delays[10:]}) > 20  # spread, not lock-step


def test_lag_histogram_counts_into_the_right_bucket() -> None:
    stats = BrokerStats()
    for seconds in (0.0002, 0.003, 0.003, 7.0, -1.0):
        stats.observe_lag(seconds)
    assert stats.lag_count == 5
    assert stats.lag_buckets[0] == 2  # 0.0002 and a clock-skewed negative
    assert stats.lag_buckets[3] == 2  # 0.003 <= 0.005
    assert stats.lag_buckets[-1] == 1


def test_cluster_urls_name_every_startup_node_and_keep_credentials_out_of_logs() -> None:
    from gamesync.broker.redis import _cluster_kwargs, _redact

    nodes, kwargs = _cluster_kwargs("rediss+cluster://app:s%40cret@10.0.0.1:7000,10.0.0.2:7001")
    assert nodes == [("10.0.0.1", 7000), ("10.0.0.2", 7001)]
    assert kwargs["username"] == "app"
    assert kwargs["password"] == "s@cret"
    assert kwargs["ssl"] is True
    assert _redact("redis://:pw@h:6379/0?x=1") == "redis://h:6379/0"
    with pytest.raises(ConfigError, match="host:port"):
        _cluster_kwargs("redis+cluster://h1,h2:7000")
