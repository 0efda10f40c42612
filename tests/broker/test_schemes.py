"""The broker URL scheme table, and that settings, the factory and the publisher all read it."""

from __future__ import annotations

import pytest

from gamesync.broker import create_broker
from gamesync.broker.memory import MemoryBroker
from gamesync.broker.redis.cluster import ClusterRedisBroker
from gamesync.broker.redis.pubsub import StandaloneRedisBroker
from gamesync.broker.schemes import (
    SCHEMES,
    BrokerKind,
    log_safe_url,
    scheme_of,
    scheme_prefixes,
)
from gamesync.errors import ConfigError
from gamesync.publisher import Publisher
from gamesync.settings import load_settings


def test_each_scheme_says_its_engine_tls_and_cluster() -> None:
    table = {s.name: (s.kind, s.tls, s.cluster) for s in SCHEMES}
    assert table == {
        "memory": (BrokerKind.MEMORY, False, False),
        "redis": (BrokerKind.REDIS, False, False),
        "rediss": (BrokerKind.REDIS, True, False),
        "redis+cluster": (BrokerKind.REDIS, False, True),
        "rediss+cluster": (BrokerKind.REDIS, True, True),
    }
    assert scheme_of("rediss+cluster://:pw@h:1,h:2").name == "rediss+cluster"
    assert scheme_of("REDIS://h:1/0").name == "redis"  # schemes are case-insensitive
    assert scheme_prefixes(BrokerKind.REDIS)[0] == "redis://"


@pytest.mark.parametrize("url", ["kafka://h:1", "h:6379", "redis:/h", "nats://u:s3cret@h:4222"])
def test_an_unknown_scheme_is_refused_with_the_list_and_never_the_url(url: str) -> None:
    with pytest.raises(ConfigError) as caught:
        scheme_of(url)
    message = str(caught.value)
    assert message.startswith("broker URL must start with one of memory://, redis://")
    assert "s3cret" not in message


def test_settings_validate_the_broker_url_with_the_table() -> None:
    for scheme in SCHEMES:
        settings = load_settings(keys="jwks.json", broker=f"{scheme.prefix}127.0.0.1:6379")
        assert settings.broker.startswith(scheme.prefix)
    with pytest.raises(ConfigError, match="broker URL must start with one of"):
        load_settings(keys="jwks.json", broker="kafka://x")


async def test_the_factory_builds_the_broker_each_scheme_names() -> None:
    expected = {
        "memory": MemoryBroker,
        "redis": StandaloneRedisBroker,
        "rediss": StandaloneRedisBroker,
        "redis+cluster": ClusterRedisBroker,
        "rediss+cluster": ClusterRedisBroker,
    }
    for scheme in SCHEMES:
        url = f"{scheme.prefix}127.0.0.1:6379" + (",127.0.0.1:6380" if scheme.cluster else "")
        broker = create_broker(url, latest_ttl_seconds=60)
        assert type(broker) is expected[scheme.name]
        await broker.stop()  # never started: releases the command client


def test_the_publisher_refuses_an_in_process_broker_with_what_to_do() -> None:
    with pytest.raises(ConfigError, match=r"memory:// broker lives inside one gateway.*--url"):
        Publisher("memory://")


@pytest.mark.parametrize(
    ("url", "safe"),
    [
        ("redis://:pw@h:6379/0?x=1", "redis://h:6379/0"),
        ("rediss+cluster://app:s3cret@10.0.0.1:7000,10.0.0.2:7001", "rediss+cluster://10.0.0.1:7000,10.0.0.2:7001"),
        ("redis://:pa?ss@h:6379/0", "redis://h:6379/0"),  # an unescaped "?" in the password
        ("redis://:pa/ss@h:6379/0", "redis://h:6379/0"),
        ("memory://", "memory://"),
    ],
)  # fmt: skip
def test_log_safe_urls_drop_credentials_and_query(url: str, safe: str) -> None:
    assert log_safe_url(url) == safe
