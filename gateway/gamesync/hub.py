"""The hub: per-game topics on this pod, version order, frames encoded once, fan-out."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
from collections.abc import Callable, Iterator, Mapping
from time import perf_counter
from typing import Any

from gamesync import jsoncodec
from gamesync.broker.base import Broker
from gamesync.connection import Connection, DeliveryStats
from gamesync.delta import diff
from gamesync.envelope import Envelope
from gamesync.framing import Framing
from gamesync.protocol import delta_frame, encode, snapshot_frame
from gamesync.tracing import Tracing

__all__ = ["Hub", "Topic"]

#: A delta frame not looked up yet (None means: there is none, send the full snapshot).
_UNSET: Any = object()

log = logging.getLogger("gamesync.hub")

#: Called once per fan-out: (envelope, recipients written now, payload bytes written now).
FanoutObserver = Callable[[Envelope, int, int], None]

#: Called with a game id when its envelope's `members` changed (cached decisions are stale).
MembersObserver = Callable[[int], None]


class _Delta:
    """The delta from a topic's previous version to its current one (protocol 2), made once.

    The JSON Patch of the public part is computed the first time a subscriber holding the base
    needs it, and shared by all of them; each user's private part gets its own patch (or its
    whole new `viewer`, when that is shorter), never another user's. A frame per (framing,
    user with a private part, or nobody) is built once.
    """

    __slots__ = ("_base_json", "_frames", "_patch", "base", "base_viewers")

    def __init__(self, base: int, base_json: bytes, base_viewers: Mapping[str, Any] | None) -> None:
        self.base = base
        self._base_json = base_json
        self.base_viewers = base_viewers
        #: the encoded public patch; b"" once computed and found no shorter than the snapshot
        self._patch: bytes | None = None
        self._frames: dict[tuple[Framing, str | None], bytes | None] = {}

    def frame(
        self, envelope: Envelope, data_json: bytes, user_id: str | None, framing: Framing
    ) -> bytes | None:
        """The delta frame for a user on `framing`, or None where only the full snapshot fits."""
        now, before = envelope.viewers or {}, self.base_viewers or {}
        private = user_id if user_id is not None and user_id in now else None
        if (user_id is not None and user_id in before) != (private is not None):
            return None  # a private part came or went: the full snapshot says it plainly
        key = (framing, private)
        if key in self._frames:
            return self._frames[key]
        patch = self._public_patch(data_json)
        built = None
        if patch:
            field = b"" if private is None else _viewer_field(before[private], now[private])
            built = delta_frame(
                envelope.game_id, envelope.version, self.base, patch, field, framing
            )
        self._frames[key] = built
        return built

    def _public_patch(self, data_json: bytes) -> bytes:
        if self._patch is None:
            with _gc_paused():
                patch = jsoncodec.dumps(
                    diff(jsoncodec.loads(self._base_json), jsoncodec.loads(data_json))
                )
            # A patch as long as the snapshot saves nothing: everyone gets the snapshot.
            self._patch = patch if len(patch) < len(data_json) else b""
            self._base_json = b""
        return self._patch


@contextlib.contextmanager
def _gc_paused() -> Iterator[None]:
    """No cyclic garbage collection while a delta is made.

    Decoding two snapshots allocates thousands of objects that die (by reference count, no
    cycles) moments later; a collection in between walks them and promotes the survivors,
    which in turn brings on full collections of the whole pod's heap. Measured with 400
    subscribers of an 8 KB game: the delta path spent more time in the collector than in
    making the deltas.
    """
    if not gc.isenabled():
        yield
        return
    gc.disable()
    try:
        yield
    finally:
        gc.enable()


def _viewer_field(before: Any, now: Any) -> bytes:
    """A user's private part in a delta: nothing if unchanged, else its patch or its whole new
    value, whichever is shorter."""
    patch = diff(before, now)
    if not patch:
        return b""
    patch_json, now_json = jsoncodec.dumps(patch), jsoncodec.dumps(now)
    if len(patch_json) < len(now_json):
        return b',"viewerPatch":' + patch_json
    return b',"viewer":' + now_json


class Topic:
    """One game on this pod: its local subscribers and its newest envelope's frames.

    Frames are built once per version: for websockets eagerly (the public one) or on first use
    (one per user with a `viewer` entry); for other framings (SSE) on first use, per user too;
    deltas from the previous version (protocol 2) on first use by a subscriber holding it.
    """

    __slots__ = (
        "_data_json",
        "_delta",
        "_framed",
        "_public",
        "_viewers",
        "delta_subscribers",
        "envelope",
        "game_id",
        "linger",
        "others",
        "ready",
        "subscribers",
    )

    def __init__(self, game_id: int) -> None:
        self.game_id = game_id
        self.subscribers: set[Connection] = set()
        #: the subscribers that take other frames than a websocket's snapshot (SSE streams,
        #: protocol-2 deltas), None while there are none: the common fan-out loop stays as is
        self.others: set[Connection] | None = None
        #: how many subscribers take deltas (the previous version is kept for them)
        self.delta_subscribers = 0
        self._delta: _Delta | None = None
        self.envelope: Envelope | None = None
        self.ready = asyncio.Event()
        self.linger: asyncio.TimerHandle | None = None
        self._data_json = b""
        self._public = b""
        self._viewers: dict[str, bytes] = {}
        #: (framing, user with a viewer entry or None) -> frame, for framings but websocket's
        self._framed: dict[tuple[Framing, str | None], bytes] | None = None

    def add(self, conn: Connection) -> None:
        """`conn` takes this game's frames from now on."""
        if conn in self.subscribers:
            return
        self.subscribers.add(conn)
        if conn.delta:
            self.delta_subscribers += 1
        if conn.delta or conn.socket.framing is not Framing.WEBSOCKET:
            if self.others is None:
                self.others = set()
            self.others.add(conn)

    def discard(self, conn: Connection) -> None:
        if conn not in self.subscribers:
            return
        self.subscribers.discard(conn)
        if conn.delta:
            self.delta_subscribers -= 1
        others = self.others
        if others is not None:
            others.discard(conn)
            if not others:
                self.others = None

    def accept(self, envelope: Envelope) -> bool:
        """Make `envelope` current if it is newer; frames are then built on demand, once."""
        previous = self.envelope
        if previous is not None and envelope.version <= previous.version:
            return False
        # Deltas start from the previous version, kept (as the bytes it was) only for them.
        self._delta = None
        if previous is not None and self.delta_subscribers:
            self._delta = _Delta(previous.version, self._data_json, previous.viewers)
        self.envelope = envelope
        self._data_json = envelope.snapshot_json  # as published: never decoded, never re-encoded
        self._public = snapshot_frame(envelope.game_id, envelope.version, self._data_json, None)
        self._viewers = {}
        self._framed = None
        return True

    def frame_for(self, user_id: str | None, framing: Framing = Framing.WEBSOCKET) -> bytes:
        """The current frame for a user: with its own `viewer` part only, or the public one."""
        envelope = self.envelope
        assert envelope is not None  # callers check; internal invariant
        viewers = envelope.viewers
        if framing is not Framing.WEBSOCKET:
            return self._framed_for(user_id if viewers and user_id in viewers else None, framing)
        if not viewers or user_id is None or user_id not in viewers:
            return self._public
        frame = self._viewers.get(user_id)
        if frame is None:
            frame = snapshot_frame(
                envelope.game_id,
                envelope.version,
                self._data_json,
                jsoncodec.dumps(viewers[user_id]),
            )
            self._viewers[user_id] = frame
        return frame

    def delta_for(self, user_id: str | None, framing: Framing) -> bytes | None:
        """The delta frame from the previous version for a user, or None (send it in full)."""
        delta = self._delta
        if delta is None:
            return None
        assert self.envelope is not None
        return delta.frame(self.envelope, self._data_json, user_id, framing)

    def private_users(self) -> frozenset[str] | Mapping[str, Any]:
        """Users with a private part in this version or (for deltas) the previous one."""
        now = self.envelope.viewers if self.envelope is not None else None
        before = self._delta.base_viewers if self._delta is not None else None
        if not before:
            return now or frozenset()
        return frozenset(now or ()) | frozenset(before)

    @property
    def delta_base(self) -> int | None:
        """The version the current deltas start from (None: no delta this version)."""
        return None if self._delta is None else self._delta.base

    def _framed_for(self, viewer_user: str | None, framing: Framing) -> bytes:
        envelope = self.envelope
        assert envelope is not None
        framed = self._framed
        if framed is None:
            framed = self._framed = {}
        key = (framing, viewer_user)
        frame = framed.get(key)
        if frame is None:
            viewer_json = None
            if viewer_user is not None:
                assert envelope.viewers is not None
                viewer_json = jsoncodec.dumps(envelope.viewers[viewer_user])
            frame = snapshot_frame(
                envelope.game_id, envelope.version, self._data_json, viewer_json, framing
            )
            framed[key] = frame
        return frame


class Hub:
    """Routes envelopes from the broker to local connections, never awaiting a client."""

    def __init__(
        self,
        broker: Broker,
        *,
        linger_seconds: float = 2.0,
        on_fanout: FanoutObserver | None = None,
        tracing: Tracing | None = None,
        enforce_members: bool = False,
        on_members: MembersObserver | None = None,
    ) -> None:
        self.broker = broker
        self.tracing = tracing
        #: the `members` policy: a subscriber a newer envelope no longer lists is dropped
        self.enforce_members = enforce_members
        self._on_members = on_members
        self.topics: dict[int, Topic] = {}
        self.stats = DeliveryStats()
        #: the broker's counters: the fan-outs' time goes to `fanout_seconds`, which the broker
        #: subtracts from its receive time (`BrokerStats.receive_seconds`)
        self._broker_stats = broker.stats
        self._linger = linger_seconds
        self._on_fanout = on_fanout
        self._tasks: set[asyncio.Task[None]] = set()

    # from the broker ---------------------------------------------------------------------

    def offer(self, envelope: Envelope) -> None:
        """Fan out `envelope` to the game's local subscribers if it is newer than the last.

        Under the `members` policy, subscribers it no longer lists lose the subscription
        (`error forbidden`, `unsubscribed`) before its frame is written. The check runs only
        when `members` differs from the previous envelope's: one set comparison per envelope.
        """
        topic = self.topics.get(envelope.game_id)
        if topic is None:
            self.stats.unrouted += 1
            return
        previous = topic.envelope
        if not topic.accept(envelope):
            self.stats.stale += 1
            return
        if self.enforce_members and (previous is None or previous.members != envelope.members):
            self._members_changed(topic, envelope)
        tracing = self.tracing
        if tracing is not None and tracing.enabled:
            conflated_before = self.stats.conflated
            with tracing.fanout(envelope, len(topic.subscribers)) as span:
                started = perf_counter()
                written, size = self._fan_out(topic, envelope)
                self._broker_stats.fanout_seconds += perf_counter() - started
                span.set_attribute("gamesync.recipients", written)
                span.set_attribute("gamesync.bytes", size)
                span.set_attribute("gamesync.conflated", self.stats.conflated - conflated_before)
        else:
            started = perf_counter()
            written, size = self._fan_out(topic, envelope)
            self._broker_stats.fanout_seconds += perf_counter() - started
        self.stats.deliveries += written
        self.stats.bytes_out += size
        self.stats.fanouts += 1
        if self._on_fanout is not None:
            self._on_fanout(envelope, written, size)

    def _fan_out(self, topic: Topic, envelope: Envelope) -> tuple[int, int]:
        """Write the newest frame to every local subscriber; (written now, bytes written)."""
        game_id, version = envelope.game_id, envelope.version
        if topic.others is not None:
            return self._fan_out_mixed(topic, envelope)
        public = topic.frame_for(None)
        viewers = envelope.viewers
        written = 0
        if not viewers:
            # The common case: one frame for everybody.
            for conn in topic.subscribers:
                written += conn.deliver(game_id, version, public)
            return written, written * len(public)
        size = 0
        for conn in topic.subscribers:
            frame = topic.frame_for(conn.user_id)
            if conn.deliver(game_id, version, frame):
                written += 1
                size += len(frame)
        return written, size

    def _fan_out_mixed(self, topic: Topic, envelope: Envelope) -> tuple[int, int]:
        """`_fan_out` for a topic with SSE or delta subscribers: each one's frame for its
        framing, and a delta for each delta subscriber holding the previous version.

        The frames of each (framing, user with a private part or nobody) are looked up once
        per fan-out; the delta is made on first use by a delta subscriber. The common pair (a
        websocket, no private part) is kept in locals: most subscribers of a big game watch.
        """
        game_id, version = envelope.game_id, envelope.version
        base = topic.delta_base
        # (a delta is looked up only when there is a base: -1 is never used)
        base_version = -1 if base is None else base
        private = topic.private_users()
        sse = Framing.SSE
        # Keyed by (SSE?, user): an Enum hashes in Python, a bool in C.
        frames: dict[tuple[bool, str | None], list[Any]] = {}
        public_full: bytes | None = None
        public_delta: Any = _UNSET
        written = size = sse_written = sse_size = delta_written = delta_size = 0
        for conn in topic.subscribers:
            framing = conn.socket.framing
            identity = conn.identity
            user_id = identity.user_id if identity is not None else None
            if framing is not sse and user_id not in private:
                # A websocket watcher (or a player with no private part this version or the last).
                if public_full is None:
                    public_full = topic.frame_for(None, framing)
                full = public_full
                if base is not None and conn.delta:
                    delta = public_delta
                    if delta is _UNSET:
                        delta = public_delta = topic.delta_for(None, framing)
                else:
                    delta = None
            else:
                key = (framing is sse, user_id if user_id in private else None)
                pair = frames.get(key)
                if pair is None:
                    pair = frames[key] = [topic.frame_for(user_id, framing), _UNSET]
                full = pair[0]
                if base is not None and conn.delta:
                    delta = pair[1]
                    if delta is _UNSET:
                        delta = pair[1] = topic.delta_for(user_id, framing)
                else:
                    delta = None
            sent: bytes | None
            if delta is None:
                sent = full if conn.deliver(game_id, version, full) else None
            else:
                sent = conn.deliver_delta(game_id, base_version, version, delta, full)
                if sent is delta:
                    delta_written += 1
                    delta_size += len(sent)
            if sent is None:
                continue
            written += 1
            size += len(sent)
            if framing is sse:
                sse_written += 1
                sse_size += len(sent)
        stats = self.stats
        stats.sse_deliveries += sse_written
        stats.sse_bytes_out += sse_size
        stats.delta_deliveries += delta_written
        stats.delta_bytes_out += delta_size
        return written, size

    def _members_changed(self, topic: Topic, envelope: Envelope) -> None:
        """Drop the subscribers `envelope.members` no longer lists (none listed: everyone)."""
        if self._on_members is not None:
            self._on_members(topic.game_id)
        allowed = envelope.members or frozenset()
        gone = [conn for conn in topic.subscribers if conn.user_id not in allowed]
        if not gone:
            return
        game_id = topic.game_id
        now = asyncio.get_running_loop().time()
        forbidden = encode(
            "error",
            code="forbidden",
            message="no longer a member of this game",
            gameId=game_id,
        )
        unsubscribed = encode("unsubscribed", gameId=game_id)
        for conn in gone:
            self.leave(conn, game_id)
            # A connection still joining has no subscription yet: its session sees that it
            # is not admitted (`admits`) and answers `forbidden` itself.
            if game_id in conn.subscriptions:
                conn.end_subscription(game_id, now, forbidden, unsubscribed)

    # from connections --------------------------------------------------------------------

    def admits(self, conn: Connection, game_id: int) -> bool:
        """`conn` joined the game and, under the `members` policy, its newest envelope lists it."""
        topic = self.topics.get(game_id)
        if topic is None or conn not in topic.subscribers:
            return False
        envelope = topic.envelope
        if not self.enforce_members or envelope is None:
            return True
        return envelope.members is not None and conn.user_id in envelope.members

    async def join(self, conn: Connection, game_id: int) -> None:
        """Add `conn` to the game once the broker subscription is live (join before read).

        Frames reach `conn` only once it lists the game in `subscriptions`; meanwhile the
        topic keeps the newest envelope, which `send_current` then hands over, so nothing
        published during the join is missed. Raises BrokerUnavailable when the broker cannot
        subscribe; `conn` is then not joined.
        """
        topic = self.topics.get(game_id)
        if topic is None:
            topic = Topic(game_id)
            self.topics[game_id] = topic
            topic.add(conn)
            try:
                await self.broker.subscribe(game_id)
                latest = await self.broker.latest(game_id)
            except BaseException:
                topic.discard(conn)
                if self.topics.get(game_id) is topic:
                    del self.topics[game_id]
                topic.ready.set()  # wake waiters; they will find the topic gone
                raise
            topic.ready.set()
            if latest is not None:
                self.offer(latest)
            return
        if topic.linger is not None:
            topic.linger.cancel()
            topic.linger = None
        topic.add(conn)
        if not topic.ready.is_set():
            await topic.ready.wait()
            if self.topics.get(game_id) is not topic:
                topic.discard(conn)
                await self.join(conn, game_id)  # the first joiner failed: try once ourselves

    def send_current(self, conn: Connection, game_id: int) -> None:
        """Give one connection the game's newest envelope, if it has not seen it."""
        topic = self.topics.get(game_id)
        envelope = topic.envelope if topic is not None else None
        if topic is not None and envelope is not None:
            framing = conn.socket.framing
            frame = topic.frame_for(conn.user_id, framing)
            if conn.deliver(game_id, envelope.version, frame):
                stats = self.stats
                stats.deliveries += 1
                stats.bytes_out += len(frame)
                if framing is Framing.SSE:
                    stats.sse_deliveries += 1
                    stats.sse_bytes_out += len(frame)

    def leave(self, conn: Connection, game_id: int) -> None:
        """Remove `conn` from the game; the last one out unsubscribes after a short linger."""
        topic = self.topics.get(game_id)
        if topic is None:
            return
        topic.discard(conn)
        if topic.subscribers or topic.linger is not None:
            return
        loop = asyncio.get_running_loop()
        topic.linger = loop.call_later(self._linger, self._expire, topic)

    def _expire(self, topic: Topic) -> None:
        topic.linger = None
        if topic.subscribers or self.topics.get(topic.game_id) is not topic:
            return
        del self.topics[topic.game_id]
        task = asyncio.get_running_loop().create_task(self._unsubscribe(topic.game_id))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _unsubscribe(self, game_id: int) -> None:
        if game_id in self.topics:  # re-joined while we were scheduled
            return
        try:
            await self.broker.unsubscribe(game_id)
        except Exception:  # the broker re-syncs its subscriptions on reconnect
            log.warning("unsubscribe from game %s failed", game_id, exc_info=True)

    async def latest(self, game_id: int) -> Envelope | None:
        """The newest envelope this pod knows for the game (from the topic, else the broker)."""
        topic = self.topics.get(game_id)
        if topic is not None and topic.ready.is_set() and topic.envelope is not None:
            return topic.envelope
        return await self.broker.latest(game_id)

    @property
    def subscription_count(self) -> int:
        return sum(len(t.subscribers) for t in self.topics.values())

    async def close(self) -> None:
        """Cancel lingering unsubscribes; the broker is stopped by its owner."""
        for topic in self.topics.values():
            if topic.linger is not None:
                topic.linger.cancel()
        for task in list(self._tasks):
            task.cancel()
        self.topics.clear()
