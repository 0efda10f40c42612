"""The one table of broker URL schemes: which broker serves each, over TLS or not, cluster or not.

Settings validation, `create_broker`, the publisher and `gamesync publish --broker` all read it;
a new engine is a row here plus its module.
"""

from __future__ import annotations

import enum
from collections.abc import Callable
from dataclasses import dataclass

from gamesync.broker.base import Broker
from gamesync.errors import ConfigError

__all__ = [
    "SCHEMES",
    "BrokerKind",
    "Scheme",
    "create_broker",
    "log_safe_url",
    "scheme_of",
    "scheme_prefixes",
]


class BrokerKind(enum.Enum):
    """The engine behind a scheme."""

    #: in the gateway's own process: nothing outside can publish to it but its HTTP endpoint
    MEMORY = "memory"
    #: Redis: backends publish to it directly (`gamesync.publisher`, the Lua script)
    REDIS = "redis"


def _memory(url: str, scheme: Scheme, latest_ttl_seconds: int) -> Broker:
    from gamesync.broker.memory import MemoryBroker

    return MemoryBroker()


def _redis(url: str, scheme: Scheme, latest_ttl_seconds: int) -> Broker:
    from gamesync.broker.redis.options import split_broker_url

    redis_url, options = split_broker_url(url)
    if scheme.cluster:
        from gamesync.broker.redis.cluster import ClusterRedisBroker

        return ClusterRedisBroker(redis_url, options, latest_ttl_seconds=latest_ttl_seconds)
    from gamesync.broker.redis.pubsub import StandaloneRedisBroker

    return StandaloneRedisBroker(redis_url, options, latest_ttl_seconds=latest_ttl_seconds)


@dataclass(frozen=True, slots=True)
class Scheme:
    """One broker URL scheme."""

    name: str
    kind: BrokerKind
    tls: bool
    cluster: bool
    #: builds a gateway's broker for a URL of this scheme: (url, scheme, latest TTL seconds)
    build: Callable[[str, Scheme, int], Broker]

    @property
    def prefix(self) -> str:
        return f"{self.name}://"


SCHEMES: tuple[Scheme, ...] = (
    Scheme("memory", BrokerKind.MEMORY, tls=False, cluster=False, build=_memory),
    Scheme("redis", BrokerKind.REDIS, tls=False, cluster=False, build=_redis),
    Scheme("rediss", BrokerKind.REDIS, tls=True, cluster=False, build=_redis),
    Scheme("redis+cluster", BrokerKind.REDIS, tls=False, cluster=True, build=_redis),
    Scheme("rediss+cluster", BrokerKind.REDIS, tls=True, cluster=True, build=_redis),
)

_BY_NAME = {scheme.name: scheme for scheme in SCHEMES}


def scheme_prefixes(kind: BrokerKind | None = None) -> tuple[str, ...]:
    """`memory://`, `redis://`, ... (of one kind when given), in table order."""
    return tuple(s.prefix for s in SCHEMES if kind is None or s.kind is kind)


def scheme_of(url: str) -> Scheme:
    """The scheme a broker URL names; ConfigError listing the known ones (never the URL)."""
    name, separator, _ = url.partition("://")
    scheme = _BY_NAME.get(name.lower()) if separator else None
    if scheme is None:
        # Only the part before "://" is echoed: the rest may hold a password.
        given = name if separator else "no scheme"
        raise ConfigError(
            f"broker URL must start with one of {', '.join(scheme_prefixes())} (got {given!r})"
        )
    return scheme


def create_broker(url: str, *, latest_ttl_seconds: int) -> Broker:
    """Build the broker a `--broker` URL names."""
    scheme = scheme_of(url)
    return scheme.build(url, scheme, latest_ttl_seconds)


def log_safe_url(url: str) -> str:
    """The URL without credentials or query (`redis://h:6379/0`), for logs and `/v1/stats`."""
    scheme, _, rest = url.partition("://")
    # Credentials end at the last "@" anywhere: a password with an unescaped "?" or "/" must
    # not survive (an "@" in the query costs only the host in the log line).
    rest = rest.rsplit("@", 1)[-1].split("?", 1)[0]
    return f"{scheme}://{rest}"
