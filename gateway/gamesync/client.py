"""The Python client: one websocket for many games, snapshots in version order (DESIGN §2).

Used by tests, bots and the benchmark. It reconnects with exponential backoff and full jitter,
honours the server's `reconnect` hints, renews its token in-band before it expires, and
re-subscribes every game after a reconnect, so it converges on the newest snapshots. With
`delta=True` it speaks protocol 2: the gateway sends a `delta` (a JSON Patch) where it can, the
client applies it to the snapshot it holds, and subscribes the game again (for its full
snapshot) when a delta's base is not the version it holds. With `affinity=True` it connects
game-affinely (DESIGN §2 "Game-affine placement"): it learns the fleet's shard count from
`GET /v1/shards` and opens `/ws/s/{shard}/games/{id}` for the first game it watches.

    async with GameSyncClient("wss://games.example/ws", get_token) as client:
        await client.subscribe(42)
        async for snapshot in client.snapshots():
            render(snapshot.game_id, snapshot.game_version, snapshot.data, snapshot.viewer)
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import json
import logging
import random
import time
import urllib.parse
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from dataclasses import dataclass
from enum import StrEnum
from types import TracebackType
from typing import Any, TypeGuard

import httpx
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidStatus

from gamesync.delta import PatchError, apply
from gamesync.errors import GameSyncError
from gamesync.protocol import Reaction, close_class
from gamesync.ratelimit import TokenBucket
from gamesync.shards import shard_of

__all__ = [
    "ClientError",
    "ClientStatus",
    "GameSyncClient",
    "Snapshot",
    "TokenProvider",
    "backoff_delay",
    "retry_after",
]

log = logging.getLogger("gamesync.client")

#: Returns a token (a JWT), synchronously or as an awaitable; called for every connect and renewal.
TokenProvider = Callable[[], str | Awaitable[str]]

#: Server error codes that end the subscription of the game they name.
_GAME_ENDING_ERRORS = frozenset({"forbidden", "too_many_subscriptions"})
_NO_WELCOME = 4000  # application-private close code: the server never said welcome


class ClientStatus(StrEnum):
    """Where the client's connection stands."""

    CONNECTING = "connecting"  # first connection under way
    CONNECTED = "connected"  # authenticated (`welcome` received)
    RECONNECTING = "reconnecting"  # lost the socket; waiting or connecting again
    DISCONNECTED = "disconnected"  # not started, closed, or stopped on an error


@dataclass(frozen=True, slots=True)
class Snapshot:
    """One game snapshot; `viewer` is this user's private part, None when the server sent none."""

    game_id: int
    game_version: int
    data: Any
    viewer: Any = None


class ClientError(GameSyncError):
    """A server `error` frame, a refused connection, or a local failure; `code` says which."""

    def __init__(
        self,
        code: str,
        message: str,
        *,
        game_id: int | None = None,
        close_code: int | None = None,
    ) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message
        self.game_id = game_id
        self.close_code = close_code


#: The longest a refused handshake's `Retry-After` is obeyed (a misconfigured proxy asking for
#: hours must not park a game client that long).
MAX_RETRY_AFTER = 300.0


def retry_after(status: int, value: str | None) -> float | None:
    """Seconds a refused handshake asks the client to wait: a 429 or 503 with `Retry-After` in
    seconds, at most `MAX_RETRY_AFTER`; None otherwise (the date form is not used by the
    gateway, and then the client's own backoff applies)."""
    if status not in (429, 503) or value is None:
        return None
    try:
        seconds = float(value.strip())
    except ValueError:
        return None
    if seconds != seconds:  # NaN
        return None
    return min(max(seconds, 0.0), MAX_RETRY_AFTER)


def backoff_delay(
    attempt: int, base: float, cap: float, rng: Callable[[], float] = random.random
) -> float:
    """Full jitter: a uniform draw in [0, min(cap, base * 2**attempt)) seconds.

    Spreads a fleet of clients that lost the same pod instead of bringing them back in waves
    (AWS Architecture Blog, "Exponential Backoff and Jitter").
    """
    ceiling = min(cap, base * 2.0 ** min(max(attempt, 0), 64))
    return rng() * ceiling


def _is_int(value: object) -> TypeGuard[int]:
    return isinstance(value, int) and not isinstance(value, bool)


def _affine_url(url: str, shard: int, game_id: int) -> str:
    """`ws(s)://host/ws` (or `/ws/games/N`, `/ws/s/S/games/N`) → the game's affine path."""
    parts = urllib.parse.urlsplit(url)
    return parts._replace(path=f"/ws/s/{shard}/games/{game_id}").geturl()


def _shards_url(url: str) -> str:
    """The public `GET /v1/shards` of the gateway at `url` (a ws:// or wss:// URL)."""
    parts = urllib.parse.urlsplit(url)
    scheme = "https" if parts.scheme == "wss" else "http"
    return parts._replace(scheme=scheme, path="/v1/shards", query="", fragment="").geturl()


def _websocket_url(url: str) -> str:
    if url.startswith("http://") or url.startswith("https://"):
        url = "ws" + url[4:]
    if not url.startswith(("ws://", "wss://")):
        raise ValueError(f"a gateway URL starts with ws:// or wss:// (got {url!r})")
    return url


class GameSyncClient:
    """Snapshots of many games over one websocket, kept alive across disconnects.

    `subscribe`/`unsubscribe` at any time; iterate `snapshots()` (one consumer) to receive them.
    A consumer that falls behind gets the newest snapshot of each game, never an older one.
    """

    def __init__(
        self,
        url: str,
        token_provider: TokenProvider,
        *,
        on_status: Callable[[ClientStatus, ClientError | None], None] | None = None,
        on_error: Callable[[ClientError], None] | None = None,
        backoff_base: float = 0.5,
        backoff_cap: float = 30.0,
        renew_margin: float = 30.0,
        stable_after: float = 5.0,
        message_rate: float = 10.0,
        message_burst: int = 20,
        open_timeout: float = 10.0,
        max_size: int = 16 << 20,
        rng: Callable[[], float] = random.random,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        clock: Callable[[], float] = time.time,
        delta: bool = False,
        affinity: bool = False,
    ) -> None:
        self.url = _websocket_url(url)
        #: protocol 2: ask for deltas (the handshake's `delta=1`)
        self.delta = delta
        #: connect to the shard of the first game watched (DESIGN §2 "Game-affine placement")
        self.affinity = affinity
        #: the fleet's shard count as last learnt (None: ask `GET /v1/shards` before connecting)
        self.shards: int | None = None
        self._resharded = False
        self._token_provider = token_provider
        self._on_status = on_status
        self._on_error = on_error
        self._backoff = (backoff_base, backoff_cap)
        self._renew_margin = renew_margin
        self._stable_after = stable_after
        self._pace_limits = (message_rate, message_burst)
        self._open_timeout = open_timeout
        self._max_size = max_size
        self._rng = rng
        self._sleep = sleep
        self._clock = clock

        self._status = ClientStatus.DISCONNECTED
        self._error: ClientError | None = None
        self._games: set[int] = set()
        #: the games in the order they were subscribed (the first picks the affine shard)
        self._order: dict[int, None] = {}
        self._versions: dict[int, int] = {}
        self._inbox: dict[int, Snapshot] = {}
        #: protocol 2: the newest snapshot accepted per game, what the next delta applies to
        self._held: dict[int, Snapshot] = {}
        #: games whose next subscribe is preceded by an unsubscribe (a delta did not fit)
        self._resync: set[int] = set()
        self._wakeup = asyncio.Event()
        self._games_wanted = asyncio.Event()
        self._ws: ClientConnection | None = None
        self._task: asyncio.Task[None] | None = None
        self._first: asyncio.Future[None] | None = None
        self._closing = False
        self._stopped = False
        self._attempt = 0
        self._auth_retried = False
        self._retry_after: float | None = None
        self._server_error: ClientError | None = None
        # per connection: games to (re)subscribe, subscribes not answered yet, the pacer
        self._outbox: set[int] = set()
        self._outbox_ready = asyncio.Event()
        self._unacked: set[int] = set()
        self._bucket: TokenBucket | None = None
        self._resend_attempt = 0

    # public surface ------------------------------------------------------------------------

    @property
    def status(self) -> ClientStatus:
        return self._status

    @property
    def error(self) -> ClientError | None:
        """Why the client is reconnecting or stopped, or None."""
        return self._error

    @property
    def games(self) -> frozenset[int]:
        """The games subscribed to (sent again after every reconnect)."""
        return frozenset(self._games)

    async def connect(self) -> None:
        """Start (idempotent) and wait for the first `welcome`; raise ClientError if it stops."""
        if self._task is None:
            if self._closing:
                raise ClientError("closed", "the client was closed")
            loop = asyncio.get_running_loop()
            self._first = loop.create_future()
            self._first.add_done_callback(lambda f: f.cancelled() or f.exception())
            self._set_status(ClientStatus.CONNECTING, None)
            self._task = loop.create_task(self._run(), name="gamesync-client")
        assert self._first is not None
        await asyncio.shield(self._first)

    async def subscribe(self, game_id: int) -> None:
        """Receive the game's snapshots, starting with the latest (kept across reconnects)."""
        if not _is_int(game_id) or game_id < 0:
            raise ValueError(f"a game id is a non-negative integer (got {game_id!r})")
        if game_id in self._games:
            return
        self._games.add(game_id)
        self._order[game_id] = None
        self._games_wanted.set()
        self._queue_subscribes([game_id])

    async def unsubscribe(self, game_id: int) -> None:
        """Stop receiving the game; a later `subscribe` starts again from its latest snapshot."""
        if game_id not in self._games:
            return
        self._forget(game_id)
        await self._send_paced({"type": "unsubscribe", "gameId": game_id})

    async def snapshots(self) -> AsyncIterator[Snapshot]:
        """Snapshots as they come, in strictly increasing version order per game.

        Ends after `close()`; raises the ClientError that stopped the client otherwise.
        """
        while True:
            if self._inbox:
                game_id = next(iter(self._inbox))
                yield self._inbox.pop(game_id)
                continue
            if self._stopped:
                if self._error is not None:
                    raise self._error
                return
            self._wakeup.clear()
            await self._wakeup.wait()

    async def close(self) -> None:
        """Close the socket and stop reconnecting; `snapshots()` ends once drained."""
        self._closing = True
        ws = self._ws
        if ws is not None:
            await ws.close()
        task = self._task
        if task is not None and not task.done():
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._stop(None)

    async def __aenter__(self) -> GameSyncClient:
        await self.connect()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    # the connection loop -------------------------------------------------------------------

    async def _run(self) -> None:
        try:
            await self._reconnect_forever()
        except Exception as exc:  # a bug: never die silently, stop and say why
            log.exception("the client's connection loop failed")
            self._stop(ClientError("internal", f"the connection loop failed: {exc!r}"))

    async def _reconnect_forever(self) -> None:
        while True:
            reaction = Reaction.RECONNECT  # unless a socket opened and its close says otherwise
            try:
                token = await self._fetch_token()
                ws = await connect(
                    await self._connect_url(),
                    additional_headers={"Authorization": f"Bearer {token}"},
                    open_timeout=self._open_timeout,
                    compression=None,  # the gateway never negotiates it (DESIGN, perf probe)
                    max_size=self._max_size,
                )
            except ClientError as exc:
                error = exc
            except InvalidStatus as exc:  # refused before the upgrade (429, 503, a proxy's 5xx)
                error = ClientError("connect_failed", str(exc))
                asked = retry_after(
                    exc.response.status_code, exc.response.headers.get("Retry-After")
                )
                if asked is not None:
                    # At least what the gateway asked (its abuse penalty, its stalled heads),
                    # plus this client's own jittered backoff so that refused clients spread.
                    backoff = backoff_delay(self._attempt, *self._backoff, self._rng)
                    self._retry_after = min(asked + backoff, max(asked, self._backoff[1]))
            except (OSError, TimeoutError, InvalidHandshake) as exc:
                error = ClientError("connect_failed", str(exc) or type(exc).__name__)
            else:
                self._server_error = None
                close_code, error = await self._serve(ws)
                reaction = close_class(close_code).reaction
            if self._closing:
                return
            if reaction is Reaction.RENEW:
                if self._auth_retried:  # a fresh token was refused too: retrying cannot help
                    self._stop(error)
                    return
                self._auth_retried = True
                self._retry_after = 0.0  # ask the token provider again, at once
            elif reaction is Reaction.STOP:
                self._stop(error)
                return
            elif reaction is Reaction.RESHARD:
                self.shards = None  # the fleet changed its shard count: learn it again
                if not self._resharded:
                    # Once at once, and not a failed attempt; a second refusal backs off.
                    self._resharded = True
                    self._set_status(ClientStatus.RECONNECTING, error)
                    continue
            elif reaction is Reaction.RECONNECT_IF_SUBSCRIBED and not self._games:
                # Closed for idling without a game: reconnecting would only idle again.
                self._set_status(ClientStatus.RECONNECTING, error)
                self._games_wanted.clear()
                await self._games_wanted.wait()
                self._attempt = 0
                continue
            await self._back_off(error)

    async def _connect_url(self) -> str:
        url = self.url
        if self.affinity and self._order:
            shards = await self._learn_shards()
            if shards is not None:
                game_id = next(iter(self._order))
                url = _affine_url(url, shard_of(game_id, shards), game_id)
        if not self.delta:
            return url
        return url + ("&" if "?" in url else "?") + "delta=1"

    async def _learn_shards(self) -> int | None:
        """The fleet's shard count (`GET /v1/shards`, kept until a 4421); None if the gateway
        does not say (an older one, or an error): the client then connects spread."""
        if self.shards is None:
            try:
                async with httpx.AsyncClient(timeout=self._open_timeout) as http:
                    answer = await http.get(_shards_url(self.url))
                answer.raise_for_status()
                shards = answer.json().get("shards")
            except (httpx.HTTPError, ValueError, AttributeError) as exc:
                log.info("no shard count from the gateway (%s): connecting spread", exc)
                return None
            if not _is_int(shards) or shards < 1:
                return None
            self.shards = shards
        return self.shards

    async def _back_off(self, error: ClientError) -> None:
        self._set_status(ClientStatus.RECONNECTING, error)
        if self._retry_after is not None:
            delay, self._retry_after = self._retry_after, None  # the server jittered it
        else:
            delay = backoff_delay(self._attempt, *self._backoff, self._rng)
        self._attempt += 1
        if delay > 0:
            await self._sleep(delay)

    async def _fetch_token(self) -> str:
        try:
            result = self._token_provider()
            token = await result if inspect.isawaitable(result) else result
        except Exception as exc:
            raise ClientError("token_unavailable", f"the token provider failed: {exc}") from exc
        if not isinstance(token, str) or not token:
            raise ClientError("token_unavailable", "the token provider returned no token")
        return token

    async def _serve(self, ws: ClientConnection) -> tuple[int, ClientError]:
        """Run one socket until it closes: (close code, why) for the reconnect decision."""
        self._ws = ws
        renewal: asyncio.Task[None] | None = None
        loop = asyncio.get_running_loop()
        self._bucket = TokenBucket(*self._pace_limits, clock=loop.time)
        self._outbox.clear()
        self._unacked.clear()
        self._resync.clear()  # a new connection's subscribes start from full snapshots
        subscriber = loop.create_task(self._subscriber(ws), name="gamesync-client-subscriber")
        welcomed_at: float | None = None
        try:
            async with asyncio.timeout(self._open_timeout) as deadline:
                async for raw in ws:
                    frame = self._decode(raw)
                    if frame is None:
                        continue
                    if frame.get("type") == "welcome":
                        if welcomed_at is None:
                            welcomed_at = loop.time()
                            deadline.reschedule(None)
                            self._on_connected()
                        if renewal is not None:
                            renewal.cancel()
                        renewal = self._schedule_renewal(ws, frame.get("expiresAt"))
                    else:
                        self._handle(frame)
        except TimeoutError:
            await ws.close(_NO_WELCOME, "no welcome in time")
            return _NO_WELCOME, ClientError("connect_failed", "no welcome from the server in time")
        except ConnectionClosed:
            pass
        finally:
            self._ws = None
            subscriber.cancel()
            if renewal is not None:
                renewal.cancel()
            if welcomed_at is not None and loop.time() - welcomed_at >= self._stable_after:
                # Only a connection that held resets the backoff and the one token retry: a
                # server that drops sockets right after `welcome` must not get a tight loop.
                self._attempt = 0
                self._auth_retried = False
                self._resharded = False
        code = ws.close_code if ws.close_code is not None else 1006
        error = self._server_error
        if error is None or code < 4000:  # an application close explains itself in a frame
            error = ClientError("connection_lost", f"closed with {code} {ws.close_reason}".strip())
        error.close_code = code
        return code, error

    def _on_connected(self) -> None:
        self._retry_after = None
        self._set_status(ClientStatus.CONNECTED, None)
        if self._first is not None and not self._first.done():
            self._first.set_result(None)
        # The server answers each subscribe with the game's latest snapshot: re-subscribing is
        # all the recovery a reconnect needs (the version gate drops what was already seen).
        self._queue_subscribes(self._games)

    # incoming frames -----------------------------------------------------------------------

    def _decode(self, raw: str | bytes) -> dict[str, Any] | None:
        try:
            frame = json.loads(raw)
        except ValueError:
            frame = None
        if not isinstance(frame, dict):
            self._report(ClientError("bad_frame", "the server sent a frame that is not an object"))
            return None
        return frame

    def _handle(self, frame: dict[str, Any]) -> None:
        kind = frame.get("type")
        if kind == "snapshot":
            self._accept(frame)
        elif kind == "delta":
            self._accept_delta(frame)
        elif kind == "error":
            game_id = frame.get("gameId")
            error = ClientError(
                str(frame.get("code") or "error"),
                str(frame.get("message") or ""),
                game_id=game_id if _is_int(game_id) else None,
            )
            self._server_error = error
            self._on_refused(error)
            self._report(error)
        elif kind == "reconnect":
            retry = frame.get("retryAfterMs")
            if isinstance(retry, int | float) and not isinstance(retry, bool) and retry >= 0:
                self._retry_after = retry / 1000
        elif kind == "subscribed" and _is_int(frame.get("gameId")):
            self._unacked.discard(frame["gameId"])
            self._resend_attempt = 0
        # unsubscribed / pong (and later additions) need no action

    def _on_refused(self, error: ClientError) -> None:
        """Drop a refused game, or subscribe again later when the refusal is temporary."""
        game_id = error.game_id
        if game_id is not None:
            self._unacked.discard(game_id)
            if game_id in self._games and error.code in _GAME_ENDING_ERRORS:
                self._forget(game_id)
            elif game_id in self._games and error.code == "service_unavailable":
                self._resend_later([game_id])
        elif error.code == "rate_limited" and self._unacked:
            # The server answers messages in order, so the subscribes it dropped are among
            # those not answered yet; sending one twice only earns a second `subscribed`.
            self._resend_later(sorted(self._unacked))

    def _accept(self, frame: dict[str, Any]) -> None:
        game_id, version = frame.get("gameId"), frame.get("gameVersion")
        if not _is_int(game_id) or not _is_int(version) or "data" not in frame:
            self._report(ClientError("bad_frame", "a snapshot without gameId/gameVersion/data"))
            return
        if game_id not in self._games:
            return  # unsubscribed while it was on its way
        last = self._versions.get(game_id)
        if last is not None and version <= last:
            return  # stale or a duplicate (e.g. the latest again after a reconnect)
        self._take(Snapshot(game_id, version, frame["data"], frame.get("viewer")))

    def _take(self, snapshot: Snapshot) -> None:
        """Accept a snapshot newer than the one held (the callers checked)."""
        game_id = snapshot.game_id
        self._versions[game_id] = snapshot.game_version
        if self.delta:
            self._held[game_id] = snapshot
        # Replaces a snapshot of the same game the consumer has not taken yet (conflation).
        self._inbox[game_id] = snapshot
        self._wakeup.set()

    def _accept_delta(self, frame: dict[str, Any]) -> None:
        """Apply a delta to the snapshot held; subscribe again if its base is not that one."""
        game_id, version = frame.get("gameId"), frame.get("gameVersion")
        base = frame.get("baseVersion")
        if not _is_int(game_id) or not _is_int(version) or not _is_int(base):
            self._report(ClientError("bad_frame", "a delta without gameId/gameVersion/baseVersion"))
            return
        if game_id not in self._games:
            return
        last = self._versions.get(game_id)
        if last is not None and version <= last:
            return  # stale or a duplicate
        held = self._held.get(game_id)
        try:
            if held is None or held.game_version != base:
                raise PatchError(f"holding version {last}, not the delta's base {base}")
            data = apply(held.data, frame.get("patch"))
            viewer = held.viewer
            if "viewer" in frame:
                viewer = frame["viewer"]
            elif "viewerPatch" in frame:
                viewer = apply(held.viewer, frame["viewerPatch"])
        except PatchError as exc:
            # The base is gone (a frame lost, a bug): the full snapshot again, from a new
            # subscription, which the server starts with its latest.
            log.info("game %s: a delta that does not fit (%s); subscribing again", game_id, exc)
            self._held.pop(game_id, None)
            self._resync.add(game_id)
            self._queue_subscribes([game_id])
            return
        self._take(Snapshot(game_id, version, data, viewer))

    # token renewal -------------------------------------------------------------------------

    def _schedule_renewal(self, ws: ClientConnection, expires_at: Any) -> asyncio.Task[None] | None:
        if not isinstance(expires_at, int | float) or isinstance(expires_at, bool):
            return None
        return asyncio.get_running_loop().create_task(
            self._renew(ws, float(expires_at)), name="gamesync-client-renewal"
        )

    async def _renew(self, ws: ClientConnection, expires_at: float) -> None:
        """Send a fresh token before `expires_at`; the server answers with a new `welcome`."""
        while True:
            remaining = expires_at - self._clock()
            # Renew `renew_margin` early, or half-way through tokens shorter than twice that.
            await asyncio.sleep(max(0.0, remaining - min(self._renew_margin, remaining / 2)))
            try:
                token = await self._fetch_token()
            except ClientError as exc:
                self._report(exc)
                if expires_at - self._clock() <= 0:
                    return  # the server closes 4401; the reconnect asks for a token again
                continue
            with contextlib.suppress(ConnectionClosed):
                await ws.send(json.dumps({"type": "auth", "token": token}))
            return

    # helpers -------------------------------------------------------------------------------

    def _queue_subscribes(self, games: Iterable[int]) -> None:
        """Subscribe on the current connection (the welcome of the next one sends them all)."""
        if self._ws is None or self._status is not ClientStatus.CONNECTED:
            return
        self._outbox.update(games)
        self._outbox_ready.set()

    def _resend_later(self, games: list[int]) -> None:
        ws = self._ws
        delay = min(self._backoff[1], 2.0**self._resend_attempt)  # the server's bucket refills
        self._resend_attempt = min(self._resend_attempt + 1, 16)
        self._unacked.difference_update(games)

        def resend() -> None:
            if self._ws is ws:
                self._queue_subscribes(g for g in games if g in self._games)

        asyncio.get_running_loop().call_later(delay, resend)

    async def _subscriber(self, ws: ClientConnection) -> None:
        """Send queued subscribes, paced under the server's message rate limit."""
        while True:
            await self._outbox_ready.wait()
            while self._outbox:
                game_id = min(self._outbox)
                self._outbox.discard(game_id)
                if game_id in self._games:
                    if game_id in self._resync:
                        # Subscribing again to a subscribed game only earns `subscribed`.
                        self._resync.discard(game_id)
                        await self._send_paced({"type": "unsubscribe", "gameId": game_id})
                    self._unacked.add(game_id)
                    await self._send_paced({"type": "subscribe", "gameId": game_id})
            self._outbox_ready.clear()

    async def _send_paced(self, message: dict[str, Any]) -> None:
        ws, bucket = self._ws, self._bucket
        if ws is None or bucket is None or self._status is not ClientStatus.CONNECTED:
            return  # sent after the next welcome
        while not bucket.take():  # noqa: ASYNC110 - waiting for tokens to refill
            await asyncio.sleep(1 / self._pace_limits[0])
        with contextlib.suppress(ConnectionClosed):  # the reconnect re-subscribes
            await ws.send(json.dumps(message))

    def _forget(self, game_id: int) -> None:
        self._games.discard(game_id)
        self._order.pop(game_id, None)
        self._versions.pop(game_id, None)
        self._inbox.pop(game_id, None)
        self._held.pop(game_id, None)
        self._resync.discard(game_id)

    def _set_status(self, status: ClientStatus, error: ClientError | None) -> None:
        if status is self._status and error is self._error:
            return
        self._status = status
        self._error = error
        if self._on_status is not None:
            try:
                self._on_status(status, error)
            except Exception:  # a broken callback must not break the connection loop
                log.exception("on_status callback failed")

    def _report(self, error: ClientError) -> None:
        if self._on_error is not None:
            try:
                self._on_error(error)
            except Exception:
                log.exception("on_error callback failed")

    def _stop(self, error: ClientError | None) -> None:
        if self._stopped:
            return
        self._stopped = True
        if error is not None:
            self._report(error)
        self._set_status(ClientStatus.DISCONNECTED, error)
        if self._first is not None and not self._first.done():
            self._first.set_exception(error or ClientError("closed", "the client was closed"))
        self._wakeup.set()
