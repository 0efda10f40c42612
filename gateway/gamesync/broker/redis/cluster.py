"""The Redis Cluster broker: sharded pub/sub on every primary, following the slot map."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Sequence

from redis.asyncio.cluster import RedisCluster
from redis.asyncio.connection import Connection
from redis.backoff import NoBackoff
from redis.crc import key_slot
from redis.retry import Retry

from gamesync.backoff import full_jitter
from gamesync.broker.redis.commands import UNAVAILABLE, error_text, open_command_client
from gamesync.broker.redis.options import BrokerOptions
from gamesync.broker.redis.pubsub import RedisBroker
from gamesync.broker.redis.script import latest_key
from gamesync.errors import ConfigError

__all__ = ["ClusterRedisBroker"]

log = logging.getLogger("gamesync.broker.redis")


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
        self._supervise("redis-cluster-topology", self._watch_topology)

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
            except UNAVAILABLE as exc:
                log.log(
                    logging.WARNING if attempt == 0 else logging.DEBUG,
                    "cannot read the slot map from redis cluster %s (retrying): %s",
                    self.describe(),
                    error_text(exc),
                )
                self._commands_ok = False
                await asyncio.sleep(
                    full_jitter(
                        attempt,
                        base=self.options.reconnect_base,
                        cap=self.options.reconnect_cap,
                        rng=self._rng.random,
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
            if any(self._links[n].is_live for n in primaries if n in self._links):
                self._schedule_reroute()

    def _probe_channel_for(self, node: str) -> bytes:
        """A probe channel whose slot the node owns (hash tag chosen by trying suffixes)."""
        for i in range(100_000):
            channel = f"gamesync:probe:{{{self._probe_id}.{i}}}".encode()
            if self._slot_owner.get(key_slot(channel)) == node:
                return channel
        raise ConfigError(f"node {node} owns no slot")  # pragma: no cover - a primary owns slots
