"""One client's session on any transport: authentication, admission, subscriptions, messages.

The endpoints (gamesync.endpoints) check the handshake and build a session on a socket: a
websocket (`WebSocketSession`: messages from the client, first-message auth) or an SSE stream
(`SseSession`: the handshake's token and games only; the client cannot send anything).
Everything else, from admission to the close, is the same code for both.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, ClassVar, Protocol
from urllib.parse import parse_qs

from starlette.datastructures import Headers
from starlette.types import Receive, Scope

from gamesync.abuse import AbusePenalty, client_address, is_offence
from gamesync.authz import Access, Authorizer
from gamesync.connection import SLOW_ABORT_SECONDS, Connection, Socket
from gamesync.errors import AuthError, BrokerUnavailable, ProtocolError
from gamesync.hub import Hub
from gamesync.keys import Identity
from gamesync.keystore import KeyStore
from gamesync.metrics import GatewayMetrics
from gamesync.protocol import (
    Auth,
    Close,
    Ping,
    Subscribe,
    Unsubscribe,
    encode,
    parse_client_message,
)
from gamesync.ratelimit import TokenBucket, WindowCounter
from gamesync.registry import Registry
from gamesync.settings import AuthzPolicy, GatewaySettings
from gamesync.sse import HUNG_UP, SseStream
from gamesync.tracing import Tracing

__all__ = ["Session", "SessionServices", "SessionSocket", "SseSession", "WebSocketSession"]

log = logging.getLogger("gamesync.session")


class SessionSocket(Socket, Protocol):
    """A connection's socket, with the loop it runs on."""

    loop: asyncio.AbstractEventLoop
    #: the close code with which the socket itself ended the connection for what the client
    #: sent, if it did (`gamesync.transport.GatewaySocket`; an SSE client sends nothing)
    ended_for: int | None


def _bearer(headers: Headers) -> str | None:
    auth = headers.get("authorization")
    if auth:
        scheme, _, value = auth.partition(" ")
        if scheme.lower() == "bearer" and value.strip():
            return value.strip()
    return None


def _token_from_handshake(headers: Headers, query_string: bytes) -> str | None:
    """Bearer header first, then the `token` query parameter (DESIGN §2)."""
    token = _bearer(headers)
    if token is not None:
        return token
    values = parse_qs(query_string.decode("latin-1")).get("token")
    if values and values[0]:
        return values[0]
    return None


def _query_flag(query_string: bytes, name: str) -> bool:
    """Whether the query turns `name` on (`1`, `true` or `on`)."""
    values = parse_qs(query_string.decode("latin-1")).get(name) or [""]
    return values[-1].lower() in ("1", "true", "on")


@dataclass(frozen=True, slots=True)
class SessionServices:
    """What a session uses of its gateway; one instance, built by the Gateway, shared by all."""

    settings: GatewaySettings
    registry: Registry
    hub: Hub
    keys: KeyStore
    authorizer: Authorizer
    metrics: GatewayMetrics
    tracing: Tracing
    #: refuses addresses whose connections keep being ended for abuse (None: off)
    penalty: AbusePenalty | None = None


class Session:
    """One connection's life, from accept to close. Messages are handled in order.

    The lifecycle is the connection's state machine (`conn.state`): the registry admits and
    drains, `close` (or the client) starts CLOSING, and `run` ends in CLOSED. A subclass per
    transport says how client messages arrive (`_next_message`) and where the token may be.
    """

    __slots__ = (
        "bad",
        "bucket",
        "conn",
        "joining",
        "offence",
        "scope",
        "services",
        "socket",
        "token",
    )

    #: the client may authenticate with its first message instead of the handshake
    first_message_auth: ClassVar[bool] = False

    def __init__(self, services: SessionServices, socket: SessionSocket, scope: Scope) -> None:
        self.services = services
        self.socket = socket
        self.scope = scope
        settings = services.settings
        self.conn = Connection(socket, socket.loop.time(), services.hub.stats)
        self.token: str | None = None
        self.bucket = TokenBucket(settings.message_rate, settings.message_burst, socket.loop.time)
        self.bad = WindowCounter(settings.bad_message_window, socket.loop.time)
        #: the game being joined (in the hub, not yet acknowledged), if any
        self.joining: int | None = None
        #: the connection was ended for abuse (`gamesync.abuse`): its address pays for it
        self.offence = False

    # closing -----------------------------------------------------------------------------

    def close(
        self,
        code: int,
        reason: str,
        *,
        error: str | None = None,
        game_id: int | None = None,
        abort_after: float | None = None,
    ) -> None:
        """Send an optional error frame, then the close; the message loop then ends."""
        last_words = None if error is None else _error_message(error, reason, game_id)
        authenticated = self.conn.identity is not None
        if self.conn.close(code, reason, last_words=last_words, abort_after=abort_after):
            self.offence = is_offence(code, authenticated=authenticated, error=error)

    def send(self, payload: bytes) -> None:
        if not self.conn.send_message(payload):
            self.close(Close.TRY_AGAIN_LATER, "client too slow", abort_after=SLOW_ABORT_SECONDS)

    def send_error(self, code: str, message: str, game_id: int | None = None) -> None:
        self.send(_error_message(code, message, game_id))

    # the life of a connection ------------------------------------------------------------

    async def run(self, games: Sequence[int] = (), *, implied: bool = True) -> None:
        """Serve the connection until it closes, first subscribing to `games`.

        `implied` games are the URL's: a forbidden one closes the connection 4403 (DESIGN §2);
        other games are treated as the client's own `subscribe` messages.
        """
        services = self.services
        registry = services.registry
        conn = self.conn
        conn.socket.on_writable = self._on_writable
        address = client_address(self.scope, services.settings.client_address_header)
        refusal = registry.attach(self, address)
        try:
            if refusal is not None:
                if refusal.retry_after_ms is not None:
                    # Paced admission: a slot of its own to come back in (DESIGN §2).
                    hint = encode("reconnect", reason="busy", retryAfterMs=refusal.retry_after_ms)
                    self.conn.close(refusal.code, refusal.reason, last_words=hint)
                else:
                    self.close(refusal.code, refusal.reason)
                return
            identity = await self._authenticate()
            if identity is None:
                return
            conn.identity = identity
            refusal = registry.admit(self)
            if refusal is not None:
                self.close(refusal.code, refusal.reason)
                return
            self._welcome()
            services.tracing.event(
                "connect", {"gamesync.user_id": identity.user_id, "url.path": self.scope["path"]}
            )
            for game_id in games:
                await self._subscribe(game_id, implied=implied)
                if conn.is_closing():
                    return
            await self._loop()
        except Exception:
            # A bug must cost one connection, with a clean close, never the client a traceback.
            log.exception("session failed; closing the connection with 1011")
            self.close(Close.INTERNAL, "internal error")
        finally:
            conn.socket.on_writable = None
            end = conn.finish(self.socket.loop.time())
            hub = services.hub
            for game_id in end.games:
                hub.leave(conn, game_id)
            if self.joining is not None:  # cancelled mid-join
                hub.leave(conn, self.joining)
            conn.subscriptions.clear()
            registry.detach(self, end)
            ended_for = self.socket.ended_for  # the socket itself ended it for what came
            if ended_for is not None and is_offence(ended_for, authenticated=True):
                self.offence = True
            if self.offence and services.penalty is not None:
                services.penalty.offended(address)

    def _on_writable(self) -> None:
        self.conn.flush()

    async def _next_message(self, timeout: float | None = None) -> dict[str, Any] | None:
        """The next ASGI message with a client frame, or None once closing or after `timeout`."""
        raise NotImplementedError

    def _handshake_token(self) -> str | None:
        """The token the handshake carried, if any."""
        raise NotImplementedError

    async def _authenticate(self) -> Identity | None:
        services = self.services
        token = self._handshake_token()
        # Protocol 2's deltas, asked for in the handshake's query (`delta=1`) or the first
        # `auth` message: decided here, before any subscription, for the connection's life.
        self.conn.delta = _query_flag(self.scope.get("query_string", b""), "delta")
        if token is None and not self.first_message_auth:
            services.metrics.auth_failed("missing")
            self.close(Close.UNAUTHORIZED, "missing token", error="unauthorized")
            return None
        if token is None:
            message = await self._next_message(services.settings.auth_timeout)
            if message is None:
                if not self.conn.is_closing():
                    services.metrics.auth_failed("missing")
                    self.close(Close.UNAUTHORIZED, "missing token", error="unauthorized")
                return None
            text = message.get("text")
            try:
                parsed = parse_client_message(text) if isinstance(text, str) else None
            except ProtocolError:
                parsed = None
            if not isinstance(parsed, Auth):
                services.metrics.auth_failed("missing")
                self.close(
                    Close.UNAUTHORIZED, "missing token: authenticate first", error="unauthorized"
                )
                return None
            token = parsed.token
            self.conn.delta = self.conn.delta or parsed.delta
        # The handshake's headers and query (which may carry the token) are not needed again.
        self.scope["headers"] = []
        self.scope["query_string"] = b""
        try:
            identity = services.keys.verify(token)
        except AuthError as exc:
            services.metrics.auth_failed(exc.message)
            self.close(Close.UNAUTHORIZED, exc.message, error=exc.code)
            return None
        self.token = token
        return identity

    def _welcome(self) -> None:
        identity = self.conn.identity
        assert identity is not None  # only called once authenticated
        # `delta` only where asked for and granted: a version-1 client sees what it always did.
        granted = {"delta": True} if self.conn.delta else {}
        self.send(
            encode(
                "welcome",
                userId=identity.user_id,
                heartbeatMs=int(self.services.settings.ping_interval * 1000),
                expiresAt=identity.expires_at,
                **granted,
            )
        )

    async def _loop(self) -> None:
        while True:
            message = await self._next_message()
            if message is None:
                return
            text = message.get("text")
            if text is None:
                self.close(
                    Close.UNSUPPORTED_DATA, "binary frames are not supported", error="bad_request"
                )
                return
            if not self.bucket.take():
                self.send_error("rate_limited", "too many messages; slow down")
                if self._count_bad():
                    return
                continue
            try:
                parsed = parse_client_message(text)
            except ProtocolError as exc:
                self.send_error("bad_request", exc.message)
                if self._count_bad():
                    return
                continue
            await self._dispatch(parsed)

    def _count_bad(self) -> bool:
        """Count a bad message; True (and closed 1008) once the client keeps at it."""
        if self.bad.add() > self.services.settings.bad_message_limit:
            self.close(Close.POLICY, "too many bad messages")
            return True
        return False

    async def _dispatch(self, message: Subscribe | Unsubscribe | Ping | Auth) -> None:
        if isinstance(message, Subscribe):
            await self._subscribe(message.game_id, implied=False)
        elif isinstance(message, Unsubscribe):
            self._unsubscribe(message.game_id)
        elif isinstance(message, Ping):
            self.send(encode("pong"))
        else:
            self._renew(message.token)

    async def _subscribe(self, game_id: int, *, implied: bool) -> None:
        services = self.services
        conn = self.conn
        if game_id in conn.subscriptions:
            self.send(encode("subscribed", gameId=game_id))
            return
        if len(conn.subscriptions) >= services.settings.max_subscriptions:
            self.send_error(
                "too_many_subscriptions",
                f"at most {services.settings.max_subscriptions} games per connection",
                game_id,
            )
            return
        identity = conn.identity
        assert identity is not None  # authenticated before any subscribe
        assert self.token is not None
        access = await services.authorizer.decide(identity, self.token, game_id)
        services.tracing.event(
            "subscribe", {"gamesync.game_id": game_id, "gamesync.decision": access.value}
        )
        if conn.is_closing():
            return
        if access is Access.UNAVAILABLE:
            if implied:
                self.close(
                    Close.TRY_AGAIN_LATER,
                    "authorization unavailable",
                    error="service_unavailable",
                    game_id=game_id,
                )
            else:
                self.send_error("service_unavailable", "cannot authorize now; retry later", game_id)
            return
        if access is Access.DENY:
            self._forbid(game_id, implied=implied)
            return
        conn.idle_since = None
        self.joining = game_id
        try:
            await services.hub.join(conn, game_id)
        except BrokerUnavailable:
            self._mark_idle_if_empty()
            self.send_error("service_unavailable", "broker unavailable; retry later", game_id)
            return
        finally:
            self.joining = None
        if conn.is_closing():
            services.hub.leave(conn, game_id)
            return
        if not services.hub.admits(conn, game_id):
            # A newer envelope dropped the user from `members` while the join was under way.
            services.hub.leave(conn, game_id)
            self._mark_idle_if_empty()
            self._forbid(game_id, implied=implied)
            return
        # Only now, with the broker subscription live, is the game acknowledged; from here on
        # the connection takes its frames, starting with the newest the pod has.
        conn.subscriptions[game_id] = -1
        self.send(encode("subscribed", gameId=game_id))
        services.hub.send_current(conn, game_id)

    def _forbid(self, game_id: int, *, implied: bool) -> None:
        """Refuse a subscription; probing game ids counts as bad messages (DESIGN §2)."""
        self.services.metrics.forbidden()
        if implied:
            self.close(Close.FORBIDDEN, "forbidden", error="forbidden", game_id=game_id)
            return
        self.send_error("forbidden", "not allowed to watch this game", game_id)
        self._count_bad()

    def _unsubscribe(self, game_id: int) -> None:
        if game_id in self.conn.subscriptions:
            self.conn.forget(game_id)
            self.services.hub.leave(self.conn, game_id)
            self._mark_idle_if_empty()
        self.send(encode("unsubscribed", gameId=game_id))

    def _mark_idle_if_empty(self) -> None:
        if not self.conn.subscriptions:
            self.conn.idle_since = self.socket.loop.time()

    def _renew(self, token: str) -> None:
        services = self.services
        conn = self.conn
        assert conn.identity is not None
        try:
            identity = services.keys.verify(token)
        except AuthError as exc:
            services.metrics.auth_failed(exc.message)
            self.close(Close.UNAUTHORIZED, exc.message, error=exc.code)
            return
        if identity.user_id != conn.identity.user_id:
            services.metrics.auth_failed("user changed")
            self.close(
                Close.UNAUTHORIZED,
                "a renewed token must be for the same user",
                error="unauthorized",
            )
            return
        conn.identity = identity
        conn.sweep_due = 0.0  # the new token may expire sooner: the sweeper looks again
        self.token = token
        self._welcome()
        if services.authorizer.policy is AuthzPolicy.CLAIM:
            # Every subscription is re-checked under the new token's claims: a token without
            # the `games` claim covers no game (DESIGN §4).
            allowed = identity.games or frozenset()
            for game_id in [g for g in conn.subscriptions if g not in allowed]:
                services.hub.leave(conn, game_id)
                conn.end_subscription(
                    game_id,
                    self.socket.loop.time(),
                    _error_message(
                        "forbidden", "the renewed token does not cover this game", game_id
                    ),
                    encode("unsubscribed", gameId=game_id),
                )
                if conn.is_closing():
                    return


def _error_message(code: str, message: str, game_id: int | None) -> bytes:
    fields: dict[str, Any] = {"code": code, "message": message}
    if game_id is not None:
        fields["gameId"] = game_id
    return encode("error", **fields)


class WebSocketSession(Session):
    """A session on a websocket: the client sends messages (and may authenticate with one)."""

    __slots__ = ("receive",)

    first_message_auth = True

    def __init__(
        self, services: SessionServices, socket: SessionSocket, scope: Scope, receive: Receive
    ) -> None:
        super().__init__(services, socket, scope)
        self.receive = receive

    def _handshake_token(self) -> str | None:
        return _token_from_handshake(Headers(scope=self.scope), self.scope.get("query_string", b""))

    async def _next_message(self, timeout: float | None = None) -> dict[str, Any] | None:
        """The next ASGI message, or None once the socket is closing or closed."""
        conn = self.conn
        if conn.is_closing():
            return None
        if timeout is None:
            message = await self.receive()
        else:
            try:
                async with asyncio.timeout(timeout):
                    message = await self.receive()
            except TimeoutError:
                return None
        if message["type"] == "websocket.disconnect":
            conn.closed_by_peer(
                int(message.get("code", Close.NORMAL)),
                str(message.get("reason") or "client closed"),
            )
            return None
        conn.frames_in += 1
        return dict(message)


class SseSession(Session):
    """A session on an SSE stream: the token comes in the `Authorization` header, the games in
    the URL; the client sends nothing, so the only thing to wait for is the stream's end."""

    __slots__ = ("stream",)

    def __init__(self, services: SessionServices, stream: SseStream, scope: Scope) -> None:
        super().__init__(services, stream, scope)
        self.stream = stream

    def _handshake_token(self) -> str | None:
        # Never from the URL: URLs end up in proxy and access logs (DESIGN §2).
        return _bearer(Headers(scope=self.scope))

    async def _next_message(self, timeout: float | None = None) -> dict[str, Any] | None:
        conn = self.conn
        if conn.is_closing():
            return None
        ended = await self.stream.wait_closed(timeout)
        if ended and not self.stream.ended_by_server and not conn.is_closing():
            conn.closed_by_peer(HUNG_UP, "client closed")
        return None
