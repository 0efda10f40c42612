"""The Redis pub/sub broker: one connection per node, kept alive, probed, re-routed.

One SUBSCRIBE (cluster: SSUBSCRIBE) per game per pod, asked for by the hub when a game's first
local subscriber arrives and dropped after the last one leaves. Pub/sub runs on connections of
its own (one `Link` per Redis node, each read by its own task); commands (the publish script,
latest reads, probes) go through the command client (`gamesync.broker.redis.commands`). When a
pub/sub connection is lost the link retries with full-jitter backoff, re-subscribes in batches,
re-reads every subscribed game's latest key and hands it to the hub (which drops what is not
newer), and only then is LIVE again. A periodic probe publishes to the pod's own probe channel
on every node and rebuilds a subscription that stays connected but no longer hears anything (a
failover's silent death). `RedisBroker` holds all of that; `StandaloneRedisBroker` is its
one-node form and `gamesync.broker.redis.cluster.ClusterRedisBroker` its sharded form.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import secrets
import time
from collections.abc import Awaitable, Callable, Coroutine, Sequence
from typing import Any

from redis.asyncio.connection import Connection, parse_url
from redis.backoff import NoBackoff
from redis.retry import Retry

from gamesync.backoff import full_jitter
from gamesync.broker.base import EnvelopeHandler
from gamesync.broker.redis.commands import (
    UNAVAILABLE,
    CommandClient,
    PublishScript,
    error_text,
    open_command_client,
    publish_payload,
)
from gamesync.broker.redis.link import Link, LinkState
from gamesync.broker.redis.options import BrokerOptions
from gamesync.broker.redis.script import channel_name, game_of_channel, latest_key
from gamesync.broker.redis.stream import PubSubStream, ReplyError
from gamesync.broker.schemes import log_safe_url
from gamesync.broker.stats import BrokerStats
from gamesync.envelope import Envelope, parse_envelope
from gamesync.errors import BrokerUnavailable, EnvelopeError
from gamesync.supervisor import ErrorLog, Supervisor

__all__ = ["RedisBroker", "StandaloneRedisBroker"]

log = logging.getLogger("gamesync.broker.redis")


class RedisBroker:
    """Redis pub/sub fan-out (a `Broker`). Subclasses map channels to nodes and pick commands."""

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
        self._links: dict[str, Link] = {}
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
        #: long-lived tasks (`_supervise`) run under this supervisor: the gateway's, or our own
        self._supervisor = Supervisor()
        self._owns_supervisor = True
        self._kept: list[asyncio.Task[None]] = []
        #: a failing envelope handler is logged once a minute, not once per envelope
        self._errors = ErrorLog(log)

    # the Broker interface ----------------------------------------------------------------

    async def start(self, handler: EnvelopeHandler, supervisor: Supervisor | None = None) -> None:
        """Start keeping pub/sub connections; never fails for an unreachable Redis (not ready).

        The probe, each link's keeper and the cluster's topology watcher run under
        `supervisor`: a bug that escapes one is logged and the task restarted with backoff (or,
        failing repeatedly, the pod reports unhealthy), never a reader silently gone.
        """
        self._handler = handler
        self._supervisor = supervisor if supervisor is not None else Supervisor()
        self._owns_supervisor = supervisor is None
        self._running = True
        self._supervise("redis-probe", self._probe_forever)
        await self._start_links()

    async def stop(self) -> None:
        self._running = False
        if self._owns_supervisor:
            await self._supervisor.stop()
        tasks = [*self._tasks, *self._kept]
        for link in self._links.values():
            link.close()
            if link.supervisor is not None:
                tasks.append(link.supervisor)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        for link in self._links.values():
            await self._drop(link)
        self._links.clear()
        self._handler = None
        with contextlib.suppress(*UNAVAILABLE):
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
        except UNAVAILABLE as exc:
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
        except UNAVAILABLE as exc:
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
        except UNAVAILABLE as exc:
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
            and all(link.is_live for link in links)
        )

    def describe(self) -> str:
        return log_safe_url(self._url)

    @property
    def subscribed_games(self) -> frozenset[int]:
        """Games the hub asked for (confirmed by Redis or about to be)."""
        return frozenset(self._games)

    @property
    def confirmed_games(self) -> frozenset[int]:
        """Games whose subscription Redis confirmed on a live connection."""
        confirmed: set[int | None] = set()
        for link in self._links.values():
            if link.is_live:
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

    def _add_link(self, node: str, probe_channel: bytes) -> Link:
        link = Link(node, probe_channel)
        self._links[node] = link
        link.supervisor = self._supervise(f"redis-pubsub-{node}", lambda: self._keep_link(link))
        self._notify_links_changed()
        return link

    async def _remove_link(self, node: str) -> None:
        link = self._links.pop(node, None)
        if link is None:
            return
        link.close()
        if link.supervisor is not None:
            link.supervisor.cancel()
            await asyncio.gather(link.supervisor, return_exceptions=True)
        await self._drop(link)
        self._notify_links_changed()

    def _notify_links_changed(self) -> None:
        self._links_changed.set()
        self._links_changed = asyncio.Event()

    async def _keep_link(self, link: Link) -> None:
        """The link's supervisor: connect, subscribe, resync, serve; after any failure wait
        (full-jitter backoff) and start over, until the link is closed."""
        attempt = 0
        while self._keeps(link):
            if link.state is LinkState.RETRYING:
                link.transition(LinkState.CONNECTING)
            try:
                await self._serve_link(link)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # every failure of a connection ends in a retry
                if link.is_live:
                    attempt = 0  # it worked for a while: start the backoff over
                self._log_failure(link, exc, quiet=attempt > 0)
                if self.sharded:
                    self._topology_suspect()
            finally:
                if not link.closed:
                    link.transition(LinkState.RETRYING)
                await self._drop(link)
            if not self._keeps(link):
                return
            delay = full_jitter(
                attempt,
                base=self.options.reconnect_base,
                cap=self.options.reconnect_cap,
                rng=self._rng.random,
            )
            attempt += 1
            await asyncio.sleep(delay)

    @staticmethod
    def _log_failure(link: Link, exc: Exception, *, quiet: bool) -> None:
        """Once per outage at WARNING (the retries after it at DEBUG), never a credential."""
        level = logging.DEBUG if quiet else logging.WARNING
        if link.state is LinkState.CONNECTING:
            log.log(
                level, "cannot connect to redis at %s (retrying): %s", link.node, error_text(exc)
            )
        else:
            log.log(
                level,
                "pub/sub connection to redis at %s lost (reconnecting): %s",
                link.node,
                error_text(exc),
            )

    def _expect(self, channel: bytes) -> asyncio.Future[None]:
        fut = self._confirm.get(channel)
        if fut is None or fut.done():
            fut = asyncio.get_running_loop().create_future()
            self._confirm[channel] = fut
        return fut

    def _keeps(self, link: Link) -> bool:
        return self._running and not link.closed

    async def _serve_link(self, link: Link) -> None:
        async with asyncio.timeout(self.options.command_timeout):
            conn = await self._connect(link.node)
        link.conn = conn
        stream = PubSubStream.take_over(
            conn, lambda replies: self._on_replies(link, replies), self.stats
        )
        link.stream = stream
        link.channels.clear()
        link.leaving.clear()
        link.transition(LinkState.SUBSCRIBING)
        reader = stream.closed
        link.reader = reader
        establish = asyncio.get_running_loop().create_task(self._establish(link, stream))
        try:
            first: set[asyncio.Future[Any]] = {reader, establish}
            await asyncio.wait(first, return_when=asyncio.FIRST_COMPLETED)
            if not establish.done():
                establish.cancel()
                await asyncio.gather(establish, return_exceptions=True)
                self._raise_reader_end(reader)
            establish.result()
            link.transition(LinkState.LIVE)
            if link.times_live > 1:
                self.stats.reconnects += 1
                log.info("pub/sub connection to redis at %s re-established", link.node)
            await asyncio.wait({reader})
            self._raise_reader_end(reader)
        finally:
            for task in (reader, establish):
                task.cancel()
            await asyncio.gather(reader, establish, return_exceptions=True)

    @staticmethod
    def _raise_reader_end(reader: asyncio.Future[str]) -> None:
        if reader.cancelled():
            raise ConnectionError("pub/sub connection rebuilt")
        raise ConnectionError(reader.result())

    async def _drop(self, link: Link) -> None:
        conn, link.conn = link.conn, None
        stream, link.stream = link.stream, None
        link.channels.clear()
        if stream is not None:
            stream.abort()
        if conn is not None:
            with contextlib.suppress(Exception):
                await conn.disconnect(nowait=True)

    async def _establish(self, link: Link, stream: PubSubStream) -> None:
        """Subscribe every channel this node carries (batched), then re-read their latest keys."""
        channels = [link.probe_channel]
        games = []
        for game_id in sorted(self._games):
            channel = channel_name(game_id).encode()
            if self._node_of(channel) == link.node:
                channels.append(channel)
                games.append(game_id)
        await self._subscribe_many(stream, channels)
        await self._resync(games)
        self._commands_ok = True

    async def _subscribe_many(self, stream: PubSubStream, channels: list[bytes]) -> None:
        """Subscribe in batches sent in one write, and wait for every confirmation."""
        waits = [self._expect(channel) for channel in channels]
        stream.send([(self._SUBSCRIBE, *batch) for batch in self._subscribe_batches(channels)])
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

    def _on_replies(self, link: Link, replies: list[Any]) -> None:
        """The hot path: every complete reply of one socket read, routed in order."""
        message, subscribed, unsubscribed = self._MESSAGE, self._SUBSCRIBED, self._UNSUBSCRIBED
        for reply in replies:
            if isinstance(reply, ReplyError):  # e.g. MOVED for an SSUBSCRIBE after a slot moved
                log.info("pub/sub error reply from %s: %s", link.node, reply)
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

    def _on_message(self, link: Link, channel: bytes, data: bytes) -> None:
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
        except Exception as exc:  # a handler bug must never kill the reader
            self._errors.error(
                "envelope-handler", f"envelope handler failed for game {envelope.game_id}", exc
            )

    def _unwanted(self, link: Link, channel: bytes) -> None:
        """A subscription confirmed after the hub gave the game up (a timed-out join): drop it."""
        game_id = game_of_channel(channel)
        if game_id is None or game_id in self._games or channel in link.leaving:
            return
        self._spawn(self._send_unsubscribe_on(link, channel), "redis-unsubscribe")

    def _lost(self, link: Link, channel: bytes) -> None:
        """The server dropped a subscription we did not give up (a slot moved): re-route it."""
        game_id = game_of_channel(channel)
        if game_id is not None and game_id in self._games:
            log.info("subscription %r dropped by %s; re-routing", channel, link.node)
            self._topology_suspect()
            self._schedule_reroute()

    # subscribing -------------------------------------------------------------------------

    async def _live_link_for(self, channel: bytes) -> Link:
        while True:
            node = self._node_of(channel)
            link = self._links.get(node) if node is not None else None
            if link is None:
                await self._links_changed.wait()
                continue
            changed = asyncio.ensure_future(self._links_changed.wait())
            live = asyncio.ensure_future(link.wait_live())
            try:
                await asyncio.wait({changed, live}, return_when=asyncio.FIRST_COMPLETED)
            finally:
                changed.cancel()
                live.cancel()
            if link.is_live and self._links.get(link.node) is link:
                return link

    async def _subscribe_on_link(self, channel: bytes) -> None:
        while True:
            link = await self._live_link_for(channel)
            stream = link.stream
            if channel in link.channels and channel not in link.leaving:
                return
            if stream is None:  # not expected while live; never spin on it
                await asyncio.sleep(self.options.reconnect_base)
                continue
            fut = self._expect(channel)
            stream.send([(self._SUBSCRIBE, channel)])
            await asyncio.shield(fut)
            if self._links.get(link.node) is link and channel in link.channels:
                return

    async def _send_unsubscribe(self, channel: bytes) -> None:
        for link in list(self._links.values()):
            if channel in link.channels:
                await self._send_unsubscribe_on(link, channel)

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
            except UNAVAILABLE as exc:
                log.info("re-routing subscriptions failed, will retry: %s", error_text(exc))
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
            if owner is None or not owner.is_live:
                continue  # a link that is (re)connecting subscribes its channels itself
            if channel not in owner.channels or channel in owner.leaving:
                to_move.setdefault(owner.node, []).append(game_id)
        for node, games in to_move.items():
            owner = self._links.get(node)
            if owner is None or owner.stream is None:
                self._reroute_again = True
                continue
            channels = [channel_name(g).encode() for g in games]
            await self._subscribe_many(owner.stream, channels)
            await self._resync(games)

    async def _send_unsubscribe_on(self, link: Link, channel: bytes) -> None:
        stream = link.stream
        if stream is None:
            return
        link.leaving[channel] = link.leaving.get(channel, 0) + 1
        # A lost connection is being rebuilt, and it will not re-subscribe the game.
        stream.send([(self._UNSUBSCRIBE, channel)])

    async def _refresh_topology(self) -> None:
        """Cluster: re-read the slot map and match links to primaries. Standalone: nothing."""

    # probing -----------------------------------------------------------------------------

    async def _probe_forever(self) -> None:
        interval = self.options.probe_interval
        while self._running:
            await asyncio.sleep(interval * self._rng.uniform(0.8, 1.0))
            links = [link for link in self._links.values() if link.is_live]
            results = await asyncio.gather(
                *(self._probe(link) for link in links), return_exceptions=True
            )
            for link, result in zip(links, results, strict=True):
                if isinstance(result, Exception):  # a bug, not an outage: keep probing
                    log.error("probing %s failed", link.node, exc_info=result)

    async def _probe(self, link: Link) -> None:
        """Publish a token to the link's probe channel; no echo in time means a deaf link."""
        token = secrets.token_hex(8).encode()
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        link.probe, link.probe_token = fut, token
        try:
            try:
                async with asyncio.timeout(self.options.command_timeout):
                    receivers = await self._send_probe(link.probe_channel, token)
            except UNAVAILABLE as exc:
                self.stats.probe_failures += 1
                self._commands_ok = False
                log.warning("probe publish to %s failed: %s", link.node, error_text(exc))
                return
            self._commands_ok = True
            try:
                if receivers == 0:
                    raise TimeoutError  # the server knows no subscriber: no need to wait
                async with asyncio.timeout(self.options.probe_timeout):
                    await fut
            except TimeoutError:
                if link.probe is not fut or not link.is_live:
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

    def _supervise(self, name: str, factory: Callable[[], Awaitable[None]]) -> asyncio.Task[None]:
        """Run a long-lived task under the supervisor (restarted if it raises)."""
        task = self._supervisor.spawn(name, factory)
        self._kept = [t for t in self._kept if not t.done()]
        self._kept.append(task)
        return task

    def _spawn(self, coro: Coroutine[Any, Any, None], name: str) -> asyncio.Task[None]:
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

    def __init__(self, url: str, options: BrokerOptions, *, latest_ttl_seconds: int) -> None:
        client = open_command_client(url, timeout=options.command_timeout)
        super().__init__(url, options, latest_ttl_seconds=latest_ttl_seconds, client=client)
        kwargs = dict(parse_url(url))
        #: the one node, named like cluster nodes are (`host:port`, no credentials)
        self._node = f"{kwargs.get('host', 'localhost')}:{kwargs.get('port', 6379)}"
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
        self._add_link(self._node, f"gamesync:probe:{{{self._probe_id}}}".encode())

    def _node_of(self, channel: bytes) -> str | None:
        return self._node

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
