"""The Redis fan-out between gateway pods (DESIGN §3, §6): standalone pub/sub or Cluster.

One SUBSCRIBE (cluster: SSUBSCRIBE) per game per pod, asked for by the hub when a game's first
local subscriber arrives and dropped after the last one leaves. Pub/sub runs on connections of
its own (one per Redis node, each read by its own task); commands (the publish script, latest
reads, probes) go through a separate client. When a pub/sub connection is lost the broker
reconnects with jittered backoff, re-subscribes in batches, re-reads every subscribed game's
latest key and hands it to the hub (which drops what is not newer), and only then is ready
again. A periodic probe publishes to the pod's own probe channel on every node and rebuilds a
subscription that stays connected but no longer hears anything (a failover's silent death).

This module and `gamesync.publisher` are the only ones that import `redis` (import-linter).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import random
import secrets
import time
from collections.abc import Sequence
from typing import Any
from urllib.parse import unquote

from redis.asyncio import Redis
from redis.asyncio.cluster import ClusterNode, RedisCluster
from redis.asyncio.connection import BlockingConnectionPool, Connection, SSLConnection, parse_url
from redis.backoff import NoBackoff
from redis.crc import key_slot
from redis.exceptions import NoScriptError, RedisError, ResponseError
from redis.retry import Retry

from gamesync.broker._redis_common import (
    PUBLISH_SCRIPT,
    PUBLISH_SCRIPT_SHA1,
    BrokerOptions,
    BrokerStats,
    backoff_delay,
    channel_name,
    game_of_channel,
    latest_key,
    split_broker_url,
)
from gamesync.broker.base import EnvelopeHandler
from gamesync.envelope import Envelope, envelope_json, parse_envelope, stamp_published_at
from gamesync.errors import BrokerUnavailable, ConfigError, EnvelopeError

__all__ = [
    "ClusterRedisBroker",
    "PublishScript",
    "RedisBroker",
    "StandaloneRedisBroker",
    "create_redis_broker",
    "open_command_client",
]

log = logging.getLogger("gamesync.broker.redis")

#: Errors that mean "Redis cannot be used right now" (wrapped as BrokerUnavailable).
_UNAVAILABLE: tuple[type[BaseException], ...] = (RedisError, OSError, TimeoutError)

CommandClient = Redis | RedisCluster


def _is_cluster_url(url: str) -> bool:
    return url.startswith(("redis+cluster://", "rediss+cluster://"))


def _redact(url: str) -> str:
    """The URL without credentials or query (log-safe)."""
    scheme, _, rest = url.partition("://")
    rest = rest.split("?", 1)[0]
    if "@" in rest:
        rest = rest.rsplit("@", 1)[1]
    return f"{scheme}://{rest}"


def _cluster_kwargs(url: str) -> tuple[list[tuple[str, int]], dict[str, Any]]:
    """Startup nodes and connection options of a `redis+cluster://[auth@]h:p,h:p[?...]` URL."""
    scheme, _, rest = url.partition("://")
    rest, _, query = rest.partition("?")
    netloc, _, _path = rest.partition("/")
    auth, _, hosts = netloc.rpartition("@")
    nodes: list[tuple[str, int]] = []
    for item in hosts.split(","):
        host, _, port = item.strip().rpartition(":")
        if not host or not port.isdigit():
            raise ConfigError(f"cluster broker URL needs host:port pairs, got {item!r}")
        nodes.append((unquote(host), int(port)))
    single = "rediss" if scheme.startswith("rediss") else "redis"
    first = f"{single}://{auth + '@' if auth else ''}{hosts.split(',')[0]}"
    kwargs: dict[str, Any] = dict(parse_url(f"{first}?{query}" if query else first))
    kwargs.pop("host", None)
    kwargs.pop("port", None)
    kwargs.pop("db", None)
    if kwargs.pop("connection_class", None) is SSLConnection:
        kwargs["ssl"] = True
    return nodes, kwargs


#: Command connections per pod (latest reads, publishes, probes) for standalone Redis.
COMMAND_POOL_SIZE = 16


def open_command_client(url: str, *, timeout: float) -> CommandClient:
    """A command client for a broker URL (standalone or cluster), failing fast when Redis is away.

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
        if _is_cluster_url(url):
            nodes, kwargs = _cluster_kwargs(url)
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
        raise ConfigError(f"invalid broker URL {_redact(url)}: {exc}") from exc


class PublishScript:
    """Runs `lua/publish.lua` by SHA1 (EVALSHA), sending the body once on NOSCRIPT."""

    def __init__(self, client: CommandClient, *, sharded: bool, ttl_seconds: int) -> None:
        self._client = client
        self._command = "SPUBLISH" if sharded else "PUBLISH"
        self._ttl = ttl_seconds

    async def run(self, game_id: int, version: int, raw: bytes) -> bool:
        """True when stored and published, False when `version` is not newer (stale)."""
        args = (latest_key(game_id), channel_name(game_id), raw, version, self._ttl, self._command)
        try:
            result = await self._client.evalsha(PUBLISH_SCRIPT_SHA1, 2, *args)
        except NoScriptError:
            # A new or restarted node: EVAL runs the script and caches it there.
            result = await self._client.eval(PUBLISH_SCRIPT.decode(), 2, *args)
        return int(result) == 1


def publish_payload(envelope: Envelope, *, now: float | None = None) -> bytes:
    """The bytes to publish: the envelope as given, with `publishedAt` added when it has none."""
    return envelope_json(stamp_published_at(envelope, time.time() if now is None else now))


class _Link:
    """One pub/sub connection to one Redis node, kept alive by its own supervisor task."""

    def __init__(self, node: str, probe_channel: bytes) -> None:
        self.node = node
        self.probe_channel = probe_channel
        self.conn: Connection | None = None
        #: channels the server confirmed on the current connection
        self.channels: set[bytes] = set()
        #: unsubscribes we asked for (any other unsubscribe came from the server)
        self.leaving: dict[bytes, int] = {}
        self.live = asyncio.Event()
        self.supervisor: asyncio.Task[None] | None = None
        self.reader: asyncio.Task[None] | None = None
        self.probe: asyncio.Future[None] | None = None
        self.probe_token = b""
        self.connected_before = False
        self.closing = False

    def rebuild(self) -> None:
        """Drop the connection; the supervisor reconnects and re-subscribes."""
        if self.reader is not None:
            self.reader.cancel()


class RedisBroker:
    """Redis pub/sub fan-out. Subclasses say how channels map to nodes and which commands apply.

    Counters for metrics are in `stats` (a `BrokerStats`).
    """

    sharded = False
    _SUBSCRIBE = b"SUBSCRIBE"
    _UNSUBSCRIBE = b"UNSUBSCRIBE"
    _SUBSCRIBED = b"subscribe"
    _UNSUBSCRIBED = b"unsubscribe"
    _MESSAGE = b"message"

    def __init__(
        self, url: str, options: BrokerOptions, *, latest_ttl_seconds: int, client: CommandClient
    ) -> None:
        self.options = options
        self.stats = BrokerStats()
        self._url = url
        self._commands: CommandClient = client
        self._script = PublishScript(client, sharded=self.sharded, ttl_seconds=latest_ttl_seconds)
        self._games: set[int] = set()
        self._handler: EnvelopeHandler | None = None
        self._links: dict[str, _Link] = {}
        self._links_changed = asyncio.Event()
        #: subscriptions waiting for a confirmation, from whichever node ends up carrying them
        self._confirm: dict[bytes, asyncio.Future[None]] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self._running = False
        self._commands_ok = False
        self._rng = random.Random()
        #: makes this pod's probe channels unique
        self._probe_id = secrets.token_hex(8)
        self._reroute_task: asyncio.Task[None] | None = None
        self._reroute_again = False

    # the Broker interface ----------------------------------------------------------------

    async def start(self, handler: EnvelopeHandler) -> None:
        """Start keeping pub/sub connections; never fails for an unreachable Redis (not ready)."""
        self._handler = handler
        self._running = True
        self._spawn(self._probe_forever(), "redis-probe")
        await self._start_links()

    async def stop(self) -> None:
        self._running = False
        tasks = [*self._tasks]
        for link in self._links.values():
            link.closing = True
            if link.supervisor is not None:
                tasks.append(link.supervisor)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        for link in self._links.values():
            await self._drop(link)
        self._links.clear()
        self._handler = None
        with contextlib.suppress(*_UNAVAILABLE):
            await self._commands.aclose()

    async def subscribe(self, game_id: int) -> None:
        if not self._running:
            raise BrokerUnavailable("the broker is not running")
        channel = channel_name(game_id).encode()
        self._games.add(game_id)
        self.stats.subscriptions = len(self._games)
        try:
            async with asyncio.timeout(self.options.command_timeout):
                await self._subscribe_on_link(channel)
        except _UNAVAILABLE as exc:
            self._abandon(game_id)
            raise BrokerUnavailable("cannot subscribe: Redis is unavailable") from exc
        except asyncio.CancelledError:
            self._abandon(game_id)
            raise

    def _abandon(self, game_id: int) -> None:
        """Forget a game whose subscribe failed; unsubscribe if Redis confirmed it meanwhile."""
        self._games.discard(game_id)
        self.stats.subscriptions = len(self._games)
        self._spawn(self._send_unsubscribe(channel_name(game_id).encode()), "redis-unsubscribe")

    async def unsubscribe(self, game_id: int) -> None:
        self._games.discard(game_id)
        self.stats.subscriptions = len(self._games)
        await self._send_unsubscribe(channel_name(game_id).encode())

    async def publish(self, envelope: Envelope) -> bool:
        raw = publish_payload(envelope)
        try:
            async with asyncio.timeout(self.options.command_timeout * 2):
                published = await self._script.run(envelope.game_id, envelope.version, raw)
        except _UNAVAILABLE as exc:
            raise BrokerUnavailable("cannot publish: Redis is unavailable") from exc
        if published:
            self.stats.publishes += 1
        else:
            self.stats.stale_publishes += 1
        return published

    async def latest(self, game_id: int) -> Envelope | None:
        try:
            async with asyncio.timeout(self.options.command_timeout):
                raw = await self._commands.get(latest_key(game_id))
        except _UNAVAILABLE as exc:
            raise BrokerUnavailable("cannot read the latest snapshot: Redis unavailable") from exc
        return self._parse(raw, game_id) if isinstance(raw, bytes) else None

    @property
    def ready(self) -> bool:
        """Commands work and every node's pub/sub connection has all its subscriptions."""
        links = self._links.values()
        return (
            self._running
            and self._commands_ok
            and bool(links)
            and all(link.live.is_set() for link in links)
        )

    def describe(self) -> str:
        return _redact(self._url)

    @property
    def subscribed_games(self) -> frozenset[int]:
        """Games the hub asked for (confirmed by Redis or about to be)."""
        return frozenset(self._games)

    @property
    def confirmed_games(self) -> frozenset[int]:
        """Games whose subscription Redis confirmed on a live connection."""
        confirmed: set[int | None] = set()
        for link in self._links.values():
            if link.live.is_set():
                confirmed.update(game_of_channel(channel) for channel in link.channels)
        return frozenset(g for g in confirmed if g is not None and g in self._games)

    # mode-specific -----------------------------------------------------------------------

    async def _start_links(self) -> None:
        raise NotImplementedError

    def _node_of(self, channel: bytes) -> str | None:
        """The node whose pub/sub connection carries `channel` (None: topology unknown)."""
        raise NotImplementedError

    async def _connect(self, node: str) -> Connection:
        raise NotImplementedError

    def _subscribe_batches(self, channels: Sequence[bytes]) -> list[list[bytes]]:
        size = self.options.resubscribe_batch
        return [list(channels[i : i + size]) for i in range(0, len(channels), size)]

    async def _read_latest(self, games: Sequence[int]) -> list[bytes | None]:
        raise NotImplementedError

    async def _send_probe(self, channel: bytes, token: bytes) -> int:
        raise NotImplementedError

    def _topology_suspect(self) -> None:
        """A node was lost or a slot moved (cluster: refresh the slot map)."""

    # links -------------------------------------------------------------------------------

    def _add_link(self, node: str, probe_channel: bytes) -> _Link:
        link = _Link(node, probe_channel)
        self._links[node] = link
        link.supervisor = asyncio.get_running_loop().create_task(
            self._keep_link(link), name=f"redis-pubsub-{node}"
        )
        self._notify_links_changed()
        return link

    async def _remove_link(self, node: str) -> None:
        link = self._links.pop(node, None)
        if link is None:
            return
        link.closing = True
        if link.supervisor is not None:
            link.supervisor.cancel()
            await asyncio.gather(link.supervisor, return_exceptions=True)
        await self._drop(link)
        self._notify_links_changed()

    def _notify_links_changed(self) -> None:
        self._links_changed.set()
        self._links_changed = asyncio.Event()

    async def _keep_link(self, link: _Link) -> None:
        """Connect, subscribe, resync, read; on any loss reconnect with jittered backoff."""
        attempt = 0
        while self._keeps(link):
            try:
                await self._serve_link(link)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # every failure of a connection ends in a reconnect
                level = logging.WARNING if attempt == 0 else logging.DEBUG
                log.log(level, "pub/sub connection to %s lost: %r", link.node, exc)
                if self.sharded:
                    self._topology_suspect()
            finally:
                if link.live.is_set():
                    attempt = 0  # it worked for a while: start the backoff over
                link.live.clear()
                await self._drop(link)
            if not self._keeps(link):
                return
            delay = backoff_delay(
                attempt,
                base=self.options.reconnect_base,
                cap=self.options.reconnect_cap,
                rng=self._rng,
            )
            attempt += 1
            await asyncio.sleep(delay)

    def _expect(self, channel: bytes) -> asyncio.Future[None]:
        fut = self._confirm.get(channel)
        if fut is None or fut.done():
            fut = asyncio.get_running_loop().create_future()
            self._confirm[channel] = fut
        return fut

    def _keeps(self, link: _Link) -> bool:
        return self._running and not link.closing

    async def _serve_link(self, link: _Link) -> None:
        async with asyncio.timeout(self.options.command_timeout):
            conn = await self._connect(link.node)
        link.conn = conn
        link.channels.clear()
        link.leaving.clear()
        reader = asyncio.get_running_loop().create_task(
            self._read(link, conn), name=f"redis-reader-{link.node}"
        )
        link.reader = reader
        establish = asyncio.get_running_loop().create_task(self._establish(link, conn))
        try:
            await asyncio.wait({reader, establish}, return_when=asyncio.FIRST_COMPLETED)
            if not establish.done():
                establish.cancel()
                await asyncio.gather(establish, return_exceptions=True)
                self._raise_reader_end(reader)
            establish.result()
            if link.connected_before:
                self.stats.reconnects += 1
                log.info("pub/sub connection to %s re-established", link.node)
            link.connected_before = True
            link.live.set()
            await asyncio.wait({reader})
            self._raise_reader_end(reader)
        finally:
            for task in (reader, establish):
                task.cancel()
            await asyncio.gather(reader, establish, return_exceptions=True)

    @staticmethod
    def _raise_reader_end(reader: asyncio.Task[None]) -> None:
        if reader.cancelled():
            raise ConnectionError("pub/sub connection rebuilt")
        exc = reader.exception()
        raise exc if exc is not None else ConnectionError("pub/sub reader ended")

    async def _drop(self, link: _Link) -> None:
        conn, link.conn = link.conn, None
        link.channels.clear()
        if conn is not None:
            with contextlib.suppress(Exception):
                await conn.disconnect(nowait=True)

    async def _establish(self, link: _Link, conn: Connection) -> None:
        """Subscribe every channel this node carries (batched), then re-read their latest keys."""
        channels = [link.probe_channel]
        games = []
        for game_id in sorted(self._games):
            channel = channel_name(game_id).encode()
            if self._node_of(channel) == link.node:
                channels.append(channel)
                games.append(game_id)
        await self._subscribe_many(link, conn, channels)
        await self._resync(games)
        self._commands_ok = True

    async def _subscribe_many(self, link: _Link, conn: Connection, channels: list[bytes]) -> None:
        """Subscribe in batches sent in one write, and wait for every confirmation."""
        waits = [self._expect(channel) for channel in channels]
        commands = [(self._SUBSCRIBE, *batch) for batch in self._subscribe_batches(channels)]
        await conn.send_packed_command(conn.pack_commands(commands), check_health=False)
        async with asyncio.timeout(self.options.command_timeout * (1 + len(channels) // 10_000)):
            await asyncio.gather(*(asyncio.shield(wait) for wait in waits))

    async def _resync(self, games: Sequence[int]) -> None:
        """Offer every game's latest envelope: whatever was published while we were away."""
        if not games:
            return
        async with asyncio.timeout(self.options.command_timeout * (1 + len(games) // 5_000)):
            values = await self._read_latest(games)
        self.stats.resyncs += len(games)
        log.debug(
            "resync of %d games: %d have a latest envelope",
            len(games),
            sum(v is not None for v in values),
        )
        for game_id, raw in zip(games, values, strict=True):
            if raw is None or game_id not in self._games:
                continue
            envelope = self._parse(raw, game_id)
            if envelope is not None:
                self._deliver(envelope)

    async def _read(self, link: _Link, conn: Connection) -> None:
        """The hot path: one task per node reads its pub/sub connection and routes every reply."""
        message, subscribed, unsubscribed = self._MESSAGE, self._SUBSCRIBED, self._UNSUBSCRIBED
        while True:
            try:
                reply = await conn.read_response(timeout=math.inf)
            except ResponseError as exc:  # e.g. MOVED for an SSUBSCRIBE after a slot moved
                log.info("pub/sub error reply from %s: %s %s", link.node, type(exc).__name__, exc)
                self._topology_suspect()
                continue
            if not isinstance(reply, list) or len(reply) < 3:
                continue
            kind, channel = reply[0], reply[1]
            if kind == message:
                self._on_message(link, channel, reply[2])
            elif kind == subscribed:
                link.channels.add(channel)
                fut = self._confirm.pop(channel, None)
                if fut is not None and not fut.done():
                    fut.set_result(None)
                self._unwanted(link, channel)
            elif kind == unsubscribed:
                link.channels.discard(channel)
                pending = link.leaving.pop(channel, 0)
                if pending > 1:
                    link.leaving[channel] = pending - 1
                elif not pending:
                    self._lost(link, channel)

    def _on_message(self, link: _Link, channel: bytes, data: bytes) -> None:
        if channel == link.probe_channel:
            probe = link.probe
            if probe is not None and not probe.done() and data == link.probe_token:
                probe.set_result(None)
            return
        game_id = game_of_channel(channel)
        if game_id is None or game_id not in self._games:
            return  # in flight while we unsubscribed
        envelope = self._parse(data, game_id)
        if envelope is None:
            return
        self.stats.received += 1
        if envelope.published_at is not None:
            self.stats.observe_lag(time.time() - envelope.published_at)
        self._deliver(envelope)

    def _parse(self, raw: bytes, game_id: int) -> Envelope | None:
        try:
            return parse_envelope(raw, expected_game_id=game_id)
        except EnvelopeError as exc:
            self.stats.malformed += 1
            log.warning("dropped an invalid envelope for game %s: %s", game_id, exc)
            return None

    def _deliver(self, envelope: Envelope) -> None:
        handler = self._handler
        if handler is None:
            return
        try:
            handler(envelope)
        except Exception:  # a handler bug must never kill the reader
            log.exception("envelope handler failed for game %s", envelope.game_id)

    def _unwanted(self, link: _Link, channel: bytes) -> None:
        """A subscription confirmed after the hub gave the game up (a timed-out join): drop it."""
        game_id = game_of_channel(channel)
        if game_id is None or game_id in self._games or channel in link.leaving:
            return
        self._spawn(self._send_unsubscribe_on(link, channel), "redis-unsubscribe")

    def _lost(self, link: _Link, channel: bytes) -> None:
        """The server dropped a subscription we did not give up (a slot moved): re-route it."""
        game_id = game_of_channel(channel)
        if game_id is not None and game_id in self._games:
            log.info("subscription %r dropped by %s; re-routing", channel, link.node)
            self._topology_suspect()
            self._schedule_reroute()

    # subscribing -------------------------------------------------------------------------

    async def _live_link_for(self, channel: bytes) -> _Link:
        while True:
            node = self._node_of(channel)
            link = self._links.get(node) if node is not None else None
            if link is None:
                await self._links_changed.wait()
                continue
            changed = asyncio.ensure_future(self._links_changed.wait())
            live = asyncio.ensure_future(link.live.wait())
            try:
                await asyncio.wait({changed, live}, return_when=asyncio.FIRST_COMPLETED)
            finally:
                changed.cancel()
                live.cancel()
            if link.live.is_set() and self._links.get(link.node) is link:
                return link

    async def _subscribe_on_link(self, channel: bytes) -> None:
        while True:
            link = await self._live_link_for(channel)
            conn = link.conn
            if channel in link.channels and channel not in link.leaving:
                return
            if conn is None:  # not expected while live; never spin on it
                await asyncio.sleep(self.options.reconnect_base)
                continue
            fut = self._expect(channel)
            await conn.send_command(self._SUBSCRIBE, channel, check_health=False)
            await asyncio.shield(fut)
            if self._links.get(link.node) is link and channel in link.channels:
                return

    async def _send_unsubscribe(self, channel: bytes) -> None:
        for link in list(self._links.values()):
            conn = link.conn
            if conn is None or channel not in link.channels:
                continue
            link.leaving[channel] = link.leaving.get(channel, 0) + 1
            # On failure the connection is being rebuilt, and it will not re-subscribe the game.
            with contextlib.suppress(*_UNAVAILABLE):
                await conn.send_command(self._UNSUBSCRIBE, channel, check_health=False)

    def _schedule_reroute(self) -> None:
        if self._reroute_task is not None and not self._reroute_task.done():
            self._reroute_again = True
            return
        self._reroute_task = self._spawn(self._reroute(), "redis-reroute")

    async def _reroute(self) -> None:
        """Put every subscribed game on the node that now owns it; resync the moved ones."""
        while self._running:
            self._reroute_again = False
            try:
                await self._refresh_topology()
                await self._move_subscriptions()
            except _UNAVAILABLE as exc:
                log.info("re-routing subscriptions failed, will retry: %r", exc)
                self._reroute_again = True
            if not self._reroute_again:
                return
            await asyncio.sleep(self.options.reconnect_base)

    async def _move_subscriptions(self) -> None:
        to_move: dict[str, list[int]] = {}
        for game_id in sorted(self._games):
            channel = channel_name(game_id).encode()
            node = self._node_of(channel)
            for link in self._links.values():
                if link.node != node and channel in link.channels:
                    await self._send_unsubscribe_on(link, channel)
            owner = self._links.get(node) if node is not None else None
            if owner is None or not owner.live.is_set():
                continue  # a link that is (re)connecting subscribes its channels itself
            if channel not in owner.channels or channel in owner.leaving:
                to_move.setdefault(owner.node, []).append(game_id)
        for node, games in to_move.items():
            owner = self._links.get(node)
            if owner is None or owner.conn is None:
                self._reroute_again = True
                continue
            channels = [channel_name(g).encode() for g in games]
            await self._subscribe_many(owner, owner.conn, channels)
            await self._resync(games)

    async def _send_unsubscribe_on(self, link: _Link, channel: bytes) -> None:
        conn = link.conn
        if conn is None:
            return
        link.leaving[channel] = link.leaving.get(channel, 0) + 1
        with contextlib.suppress(*_UNAVAILABLE):
            await conn.send_command(self._UNSUBSCRIBE, channel, check_health=False)

    async def _refresh_topology(self) -> None:
        """Cluster: re-read the slot map and match links to primaries. Standalone: nothing."""

    # probing -----------------------------------------------------------------------------

    async def _probe_forever(self) -> None:
        interval = self.options.probe_interval
        while self._running:
            await asyncio.sleep(interval * self._rng.uniform(0.8, 1.0))
            links = [link for link in self._links.values() if link.live.is_set()]
            results = await asyncio.gather(
                *(self._probe(link) for link in links), return_exceptions=True
            )
            for link, result in zip(links, results, strict=True):
                if isinstance(result, Exception):  # a bug, not an outage: keep probing
                    log.error("probing %s failed", link.node, exc_info=result)

    async def _probe(self, link: _Link) -> None:
        """Publish a token to the link's probe channel; no echo in time means a deaf link."""
        token = secrets.token_hex(8).encode()
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        link.probe, link.probe_token = fut, token
        try:
            try:
                async with asyncio.timeout(self.options.command_timeout):
                    receivers = await self._send_probe(link.probe_channel, token)
            except _UNAVAILABLE as exc:
                self.stats.probe_failures += 1
                self._commands_ok = False
                log.warning("probe publish to %s failed: %r", link.node, exc)
                return
            self._commands_ok = True
            try:
                if receivers == 0:
                    raise TimeoutError  # the server knows no subscriber: no need to wait
                async with asyncio.timeout(self.options.probe_timeout):
                    await fut
            except TimeoutError:
                if link.probe is not fut or not link.live.is_set():
                    return  # the link was rebuilt meanwhile
                self.stats.probe_failures += 1
                log.warning(
                    "pub/sub connection to %s is deaf (probe not received); rebuilding", link.node
                )
                self._topology_suspect()
                link.rebuild()
        finally:
            if link.probe is fut:
                link.probe = None

    def _spawn(self, coro: Any, name: str) -> asyncio.Task[None]:
        task: asyncio.Task[None] = asyncio.get_running_loop().create_task(coro, name=name)
        self._tasks.add(task)
        task.add_done_callback(self._task_done)
        return task

    def _task_done(self, task: asyncio.Task[None]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            # Never silent: a dead helper task makes the broker unready until restarted.
            log.error("broker task %s died", task.get_name(), exc_info=task.exception())
            self._commands_ok = False


class StandaloneRedisBroker(RedisBroker):
    """One Redis server (or a proxy in front of one): PUBLISH/SUBSCRIBE on a single node."""

    _NODE = "redis"

    def __init__(self, url: str, options: BrokerOptions, *, latest_ttl_seconds: int) -> None:
        client = open_command_client(url, timeout=options.command_timeout)
        super().__init__(url, options, latest_ttl_seconds=latest_ttl_seconds, client=client)
        kwargs = dict(parse_url(url))
        connection_class = kwargs.pop("connection_class", Connection)
        self._connection_class: type[Connection] = (
            connection_class if isinstance(connection_class, type) else Connection
        )
        self._connection_kwargs: dict[str, Any] = {
            **kwargs,
            "socket_timeout": None,
            "socket_connect_timeout": options.command_timeout,
            "socket_keepalive": True,
            "protocol": 2,
            "retry": Retry(NoBackoff(), 0),
            "health_check_interval": 0,
        }

    async def _start_links(self) -> None:
        self._add_link(self._NODE, f"gamesync:probe:{{{self._probe_id}}}".encode())

    def _node_of(self, channel: bytes) -> str | None:
        return self._NODE

    async def _connect(self, node: str) -> Connection:
        conn = self._connection_class(**self._connection_kwargs)
        await conn.connect()  # type: ignore[no-untyped-call]
        return conn

    async def _read_latest(self, games: Sequence[int]) -> list[bytes | None]:
        values: list[bytes | None] = []
        size = self.options.resubscribe_batch
        for i in range(0, len(games), size):
            keys = [latest_key(g) for g in games[i : i + size]]
            values.extend(
                v if isinstance(v, bytes) else None for v in await self._commands.mget(keys)
            )
        return values

    async def _send_probe(self, channel: bytes, token: bytes) -> int:
        return int(await self._commands.publish(channel, token))


class ClusterRedisBroker(RedisBroker):
    """Redis Cluster: sharded pub/sub (SSUBSCRIBE/SPUBLISH), one reader per primary node.

    A game's channel and latest key share a slot (hash tag `{ID}`), so the publish script runs
    on the node that also delivers the message. The slot map is refreshed periodically, when a
    node is lost, on MOVED, and when a node drops a subscription because its slot moved away;
    subscriptions are then moved to the new owner and the moved games resynced.
    """

    sharded = True
    _SUBSCRIBE = b"SSUBSCRIBE"
    _UNSUBSCRIBE = b"SUNSUBSCRIBE"
    _SUBSCRIBED = b"ssubscribe"
    _UNSUBSCRIBED = b"sunsubscribe"
    _MESSAGE = b"smessage"

    #: seconds between slot-map refreshes when nothing suggests a change
    TOPOLOGY_REFRESH_SECONDS = 15.0

    def __init__(self, url: str, options: BrokerOptions, *, latest_ttl_seconds: int) -> None:
        client = open_command_client(url, timeout=options.command_timeout)
        super().__init__(url, options, latest_ttl_seconds=latest_ttl_seconds, client=client)
        self._cluster: RedisCluster = client  # type: ignore[assignment]
        self._topology_dirty = asyncio.Event()
        self._topology_lock = asyncio.Lock()
        self._initialized = False
        self._slot_owner: dict[int, str] = {}

    async def _start_links(self) -> None:
        self._spawn(self._watch_topology(), "redis-cluster-topology")

    def _topology_suspect(self) -> None:
        self._topology_dirty.set()

    def _node_of(self, channel: bytes) -> str | None:
        return self._slot_owner.get(key_slot(channel))

    def _subscribe_batches(self, channels: Sequence[bytes]) -> list[list[bytes]]:
        # SSUBSCRIBE takes channels of one slot only; all commands still go out in one write.
        by_slot: dict[int, list[bytes]] = {}
        for channel in channels:
            by_slot.setdefault(key_slot(channel), []).append(channel)
        size = self.options.resubscribe_batch
        return [
            group[i : i + size] for group in by_slot.values() for i in range(0, len(group), size)
        ]

    async def _connect(self, node: str) -> Connection:
        cluster_node = self._cluster.nodes_manager.nodes_cache.get(node)
        if cluster_node is None:
            raise ConnectionError(f"node {node} left the cluster")
        kwargs = {
            **cluster_node.connection_kwargs,
            "socket_timeout": None,
            "socket_keepalive": True,
            "protocol": 2,
            "retry": Retry(NoBackoff(), 0),
            "health_check_interval": 0,
        }
        conn: Connection = cluster_node.connection_class(**kwargs)
        await conn.connect()  # type: ignore[no-untyped-call]
        return conn

    async def _read_latest(self, games: Sequence[int]) -> list[bytes | None]:
        keys = [latest_key(g) for g in games]
        return list(await self._cluster.mget_nonatomic(keys))

    async def _send_probe(self, channel: bytes, token: bytes) -> int:
        return int(await self._cluster.spublish(channel, token))

    async def _watch_topology(self) -> None:
        """Keep one link per primary and the slot map current; never dies quietly."""
        attempt = 0
        while self._running:
            try:
                await self._refresh_topology()
                attempt = 0
            except _UNAVAILABLE as exc:
                log.log(
                    logging.WARNING if attempt == 0 else logging.DEBUG,
                    "cannot read the cluster's slot map: %r",
                    exc,
                )
                self._commands_ok = False
                await asyncio.sleep(
                    backoff_delay(
                        attempt,
                        base=self.options.reconnect_base,
                        cap=self.options.reconnect_cap,
                        rng=self._rng,
                    )
                )
                attempt += 1
                continue
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self.TOPOLOGY_REFRESH_SECONDS):
                    await self._topology_dirty.wait()

    async def _refresh_topology(self) -> None:
        async with self._topology_lock:
            await self._refresh_topology_locked()

    async def _refresh_topology_locked(self) -> None:
        self._topology_dirty.clear()
        manager = self._cluster.nodes_manager
        async with asyncio.timeout(self.options.command_timeout * 2):
            if self._initialized:
                await manager.initialize()
            else:  # the first time also loads the command table the client routes with
                await self._cluster.initialize()
                self._initialized = True
        owners = {slot: nodes[0].name for slot, nodes in manager.slots_cache.items() if nodes}
        changed = owners != self._slot_owner
        self._slot_owner = owners
        primaries = set(owners.values())
        for node in [n for n in self._links if n not in primaries]:
            await self._remove_link(node)
        for node in sorted(primaries):
            link = self._links.get(node)
            probe = self._probe_channel_for(node)
            if link is not None and link.probe_channel != probe:
                await self._remove_link(node)  # its probe slot moved: start clean
                link = None
            if link is None:
                self._add_link(node, probe)
        if changed:
            self._notify_links_changed()
            if any(self._links.get(n) and self._links[n].live.is_set() for n in primaries):
                self._schedule_reroute()

    def _probe_channel_for(self, node: str) -> bytes:
        """A probe channel whose slot the node owns (hash tag chosen by trying suffixes)."""
        for i in range(100_000):
            channel = f"gamesync:probe:{{{self._probe_id}.{i}}}".encode()
            if self._slot_owner.get(key_slot(channel)) == node:
                return channel
        raise ConfigError(f"node {node} owns no slot")  # pragma: no cover - a primary owns slots


def create_redis_broker(url: str, *, latest_ttl_seconds: int) -> RedisBroker:
    """The broker for a `redis://`, `rediss://`, `redis+cluster://` or `rediss+cluster://` URL.

    GameSync's own tuning may ride along as query parameters (see `BrokerOptions`), e.g.
    `redis://127.0.0.1:6379/0?probe_interval=2&probe_timeout=1`.
    """
    redis_url, options = split_broker_url(url)
    if _is_cluster_url(redis_url):
        return ClusterRedisBroker(redis_url, options, latest_ttl_seconds=latest_ttl_seconds)
    return StandaloneRedisBroker(redis_url, options, latest_ttl_seconds=latest_ttl_seconds)
