"""Redis commands: the command client and the publish script runner (what a publisher needs).

The gateway's brokers read latest keys, publish and probe through this client; the backend-side
`gamesync.publisher` uses it alone. Pub/sub lives in `gamesync.broker.redis.pubsub`.
"""

from __future__ import annotations

import time
from typing import Any
from urllib.parse import unquote

from redis.asyncio import Redis
from redis.asyncio.cluster import ClusterNode, RedisCluster
from redis.asyncio.connection import BlockingConnectionPool, SSLConnection, parse_url
from redis.backoff import NoBackoff
from redis.exceptions import (
    BusyLoadingError,
    ClusterDownError,
    NoScriptError,
    RedisClusterException,
    RedisError,
    TryAgainError,
)
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError
from redis.retry import Retry

from gamesync.broker.redis.script import PUBLISH_SCRIPT, PUBLISH_SCRIPT_SHA1, script_keys
from gamesync.broker.schemes import log_safe_url, scheme_of
from gamesync.envelope import Envelope, envelope_json, stamp_published_at
from gamesync.errors import ConfigError

__all__ = [
    "COMMAND_POOL_SIZE",
    "TRANSIENT",
    "UNAVAILABLE",
    "CommandClient",
    "PublishScript",
    "cluster_startup",
    "error_text",
    "open_command_client",
    "publish_payload",
]

#: Errors that mean "Redis cannot be used right now" (wrapped as BrokerUnavailable).
#: RedisClusterException is not a RedisError: "no startup node reachable", a slot not covered.
UNAVAILABLE: tuple[type[BaseException], ...] = (
    RedisError,
    RedisClusterException,
    OSError,
    TimeoutError,
)

#: Failures worth another try: the connection, a timeout, a cluster mid-failover or loading.
#: Any other RedisError is an answer (authentication, ACL, a script error).
TRANSIENT: tuple[type[BaseException], ...] = (
    RedisConnectionError,
    RedisTimeoutError,
    ClusterDownError,
    TryAgainError,
    BusyLoadingError,
    RedisClusterException,
    OSError,
    TimeoutError,
)

CommandClient = Redis | RedisCluster

#: Command connections per pod (latest reads, publishes, probes) for standalone Redis.
COMMAND_POOL_SIZE = 16


def error_text(exc: BaseException) -> str:
    """`ConnectionError: Error 111 connecting to ...` for logs (redis-py's reprs name only the
    type; its messages carry host and port, never credentials)."""
    text = str(exc)
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def cluster_startup(url: str) -> tuple[list[tuple[str, int]], dict[str, Any]]:
    """Startup nodes and connection options of a `redis+cluster://[auth@]h:p,h:p[?...]` URL."""
    scheme = scheme_of(url)
    _, _, rest = url.partition("://")
    rest, _, query = rest.partition("?")
    netloc, _, _path = rest.partition("/")
    auth, _, hosts = netloc.rpartition("@")
    nodes: list[tuple[str, int]] = []
    for item in hosts.split(","):
        host, _, port = item.strip().rpartition(":")
        if not host or not port.isdigit():
            raise ConfigError(f"cluster broker URL needs host:port pairs, got {item!r}")
        nodes.append((unquote(host), int(port)))
    single = "rediss" if scheme.tls else "redis"
    first = f"{single}://{auth + '@' if auth else ''}{hosts.split(',')[0]}"
    kwargs: dict[str, Any] = dict(parse_url(f"{first}?{query}" if query else first))
    kwargs.pop("host", None)
    kwargs.pop("port", None)
    kwargs.pop("db", None)
    if kwargs.pop("connection_class", None) is SSLConnection:
        kwargs["ssl"] = True
    return nodes, kwargs


def open_command_client(url: str, *, timeout: float) -> CommandClient:
    """A command client for a Redis broker URL, failing fast when Redis is away.

    `url` has no GameSync options left (see `split_broker_url`). RESP2, a short socket timeout,
    and one immediate retry (a pooled connection may have died with a restarted server).
    """
    common: dict[str, Any] = {
        "socket_timeout": timeout,
        "socket_connect_timeout": timeout,
        "retry": Retry(NoBackoff(), 1),
        "protocol": 2,
        "health_check_interval": 0,
    }
    try:
        if scheme_of(url).cluster:
            nodes, kwargs = cluster_startup(url)
            return RedisCluster(
                startup_nodes=[ClusterNode(host, port) for host, port in nodes],
                **{**common, **kwargs},
            )
        # Bounded: a burst of joins waits for a free connection instead of opening a hundred.
        pool = BlockingConnectionPool.from_url(
            url, max_connections=COMMAND_POOL_SIZE, timeout=timeout, **common
        )
        return Redis(connection_pool=pool)
    except (ValueError, TypeError, RedisError) as exc:
        raise ConfigError(f"invalid broker URL {log_safe_url(url)}: {exc}") from exc


class PublishScript:
    """Runs `lua/publish.lua` by SHA1 (EVALSHA), sending the body once on NOSCRIPT."""

    def __init__(self, client: CommandClient, *, sharded: bool, ttl_seconds: int) -> None:
        self._client = client
        self._command = "SPUBLISH" if sharded else "PUBLISH"
        self._ttl = ttl_seconds

    async def run(self, game_id: int, version: int, raw: bytes) -> bool:
        """True when stored and published, False when `version` is not newer (stale)."""
        args = (*script_keys(game_id), raw, version, self._ttl, self._command)
        try:
            result = await self._client.evalsha(PUBLISH_SCRIPT_SHA1, 3, *args)
        except NoScriptError:
            # A new or restarted node: EVAL runs the script and caches it there.
            result = await self._client.eval(PUBLISH_SCRIPT.decode(), 3, *args)
        return int(result) == 1


def publish_payload(envelope: Envelope, *, now: float | None = None) -> bytes:
    """The bytes to publish: the envelope as given, with `publishedAt` added when it has none."""
    return envelope_json(stamp_published_at(envelope, time.time() if now is None else now))
