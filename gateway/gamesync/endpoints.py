"""The public port's two endpoints: the websocket and SSE handshakes, then a session each.

Both check the same things before any session exists (the Origin allow-list, the drain) and
refuse with plain HTTP; everything after the handshake (admission, auth, subscriptions, the
close) is the session's, the same for both transports.
"""

from __future__ import annotations

import logging
import re
from urllib.parse import parse_qs

from starlette.datastructures import Headers
from starlette.types import Receive, Scope, Send

from gamesync.protocol import Close
from gamesync.session import SessionServices, SseSession, WebSocketSession
from gamesync.shards import WRONG_SHARD_STATUS
from gamesync.sse import SseStream
from gamesync.transport import SCOPE_KEY, GatewaySocket

__all__ = ["SseEndpoint", "WebSocketEndpoint"]

log = logging.getLogger("gamesync.session")

_GAME_ID = re.compile(r"^[0-9]{1,18}$")

#: How long a browser may cache a CORS preflight answer for the SSE endpoint.
_PREFLIGHT_MAX_AGE = b"600"


def _origin_allowed(scope: Scope, allowed: tuple[str, ...]) -> bool:
    """Browsers send Origin; with an allow-list configured, only listed origins get in."""
    if not allowed:
        return True
    origin = Headers(scope=scope).get("origin")
    return origin is None or origin.rstrip("/") in allowed


def _wrong_shard(scope: Scope, services: SessionServices) -> str | None:
    """Why a game-affine path (`/ws/s/{shard}/games/{id}`) is not for this pod, or None."""
    params = scope.get("path_params", {})
    shard = params.get("shard")
    if shard is None:
        return None  # `/ws`, `/ws/games/{id}`: spread placement, served by every shard
    return services.settings.shard_identity.refusal(shard, params["game_id"])


async def _refuse(send: Send, status: int, reason: str) -> None:
    """Refuse the upgrade with a plain HTTP response (ASGI websocket.http.response)."""
    body = reason.encode()
    await send(
        {
            "type": "websocket.http.response.start",
            "status": status,
            "headers": [(b"content-type", b"text/plain; charset=utf-8"), (b"retry-after", b"1")],
        }
    )
    await send({"type": "websocket.http.response.body", "body": body})


class WebSocketEndpoint:
    """ASGI app for `/ws`, `/ws/games/{gameId}` and `/ws/s/{shard}/games/{gameId}`."""

    def __init__(self, services: SessionServices) -> None:
        self.services = services

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        services = self.services
        if not _origin_allowed(scope, services.settings.allowed_origins):
            services.metrics.handshake_refused("origin", "websocket")
            await _refuse(send, 403, "origin not allowed")
            return
        misdirected = _wrong_shard(scope, services)
        if misdirected is not None:
            services.metrics.handshake_refused("wrong_shard", "websocket")
        elif services.registry.draining:
            services.metrics.handshake_refused("draining", "websocket")
            await _refuse(send, 503, "draining: reconnect to another instance")
            return
        socket = scope.get("extensions", {}).get(SCOPE_KEY)
        if not isinstance(socket, GatewaySocket):
            log.error("websocket served without gamesync.transport.GatewaySocket; refusing")
            await _refuse(send, 500, "misconfigured server")
            return
        if (await receive())["type"] != "websocket.connect":
            return
        await send({"type": "websocket.accept"})
        if misdirected is not None:
            # A close code, not an HTTP status: a browser sees only the close of a refused
            # upgrade, and the client must tell this from a network failure (DESIGN §2). The
            # close is bounded like every other (the socket is dropped after the close bound).
            socket.close_now(Close.WRONG_SHARD, misdirected)
            return
        game_id = scope.get("path_params", {}).get("game_id")
        session = WebSocketSession(services, socket, scope, receive)
        await session.run([] if game_id is None else [game_id], implied=True)


class SseEndpoint:
    """ASGI app for `GET /sse/games/{gameId}`, `GET /sse/s/{shard}/games/{gameId}` and
    `GET /sse?games=1,2` (DESIGN §2).

    A cross-origin page reads the stream with `fetch()` and an `Authorization` header, which
    needs CORS: the preflight is answered here, for any origin unless an allow-list is set (a
    bearer token, never a cookie, authenticates, so an origin gains nothing it did not hold).
    """

    def __init__(self, services: SessionServices) -> None:
        self.services = services

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        services = self.services
        settings = services.settings
        origin = Headers(scope=scope).get("origin")
        allowed = _origin_allowed(scope, settings.allowed_origins)
        cors = [(b"access-control-allow-origin", origin.encode("latin-1"))] if origin else []
        if cors and allowed:
            cors.append((b"vary", b"origin"))
        else:
            cors = []
        method = scope["method"]
        if method == "OPTIONS":
            status = 204 if allowed else 403
            await _respond(send, status, "", [*cors, *_PREFLIGHT])
            return
        if method != "GET":
            await _respond(send, 405, "use GET", [(b"allow", b"GET, OPTIONS"), *cors])
            return
        if not allowed:
            services.metrics.handshake_refused("origin", "sse")
            await _respond(send, 403, "origin not allowed", [])
            return
        misdirected = _wrong_shard(scope, services)
        if misdirected is not None:
            services.metrics.handshake_refused("wrong_shard", "sse")
            await _respond(send, WRONG_SHARD_STATUS, misdirected, cors)
            return
        if services.registry.draining:
            services.metrics.handshake_refused("draining", "sse")
            await _respond(
                send,
                503,
                "draining: reconnect to another instance",
                [(b"retry-after", b"1"), *cors],
            )
            return
        if scope.get("http_version") != "1.1":
            await _respond(send, 505, "an event stream needs HTTP/1.1", cors)
            return
        implied_game = scope.get("path_params", {}).get("game_id")
        if implied_game is not None:
            games: list[int] = [implied_game]
        else:
            parsed = _games_from_query(scope.get("query_string", b""), settings.max_subscriptions)
            if isinstance(parsed, str):
                await _respond(send, 400, parsed, cors)
                return
            games = parsed
        stream = SseStream.open(scope)
        if stream is None:
            log.error("event stream served without gamesync.sse.GatewayHTTP; refusing")
            await _respond(send, 500, "misconfigured server", cors)
            return
        await stream.start(send, cors)
        session = SseSession(services, stream, scope)
        try:
            await session.run(games, implied=implied_game is not None)
        finally:
            stream.finish()


_PREFLIGHT = [
    (b"access-control-allow-methods", b"GET"),
    (b"access-control-allow-headers", b"authorization"),
    (b"access-control-max-age", _PREFLIGHT_MAX_AGE),
]


def _games_from_query(query_string: bytes, limit: int) -> list[int] | str:
    """The game ids of `?games=1,2,3` in order, once each; or why the query is refused."""
    values = parse_qs(query_string.decode("latin-1")).get("games", [])
    raw = [part.strip() for value in values for part in value.split(",") if part.strip()]
    if not raw:
        return "name the games: /sse?games=1,2"
    if len(raw) > limit:
        return f"at most {limit} games per stream"
    if not all(_GAME_ID.match(part) for part in raw):
        return "'games' must be game ids (non-negative integers) separated by commas"
    return list(dict.fromkeys(int(part) for part in raw))


async def _respond(send: Send, status: int, text: str, headers: list[tuple[bytes, bytes]]) -> None:
    body = text.encode()
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"text/plain; charset=utf-8"),
                (b"content-length", str(len(body)).encode()),
                (b"cache-control", b"no-store"),
                *headers,
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})
