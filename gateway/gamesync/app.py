"""The two apps: public (websockets, event streams, probes, dev console) and internal (ops,
publish)."""

from __future__ import annotations

import hmac
import math
import re
import time
from importlib import resources
from pathlib import Path
from typing import Any

from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse, PlainTextResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.types import Receive, Scope, Send

from gamesync.endpoints import SseEndpoint, WebSocketEndpoint
from gamesync.envelope import parse_envelope, stamp_published_at
from gamesync.errors import BrokerUnavailable, EnvelopeError
from gamesync.gateway import Gateway
from gamesync.keys import sign_token
from gamesync.ratelimit import KeyedBuckets
from gamesync.shedding import ShedRefused

__all__ = ["PUBLISH_AUTH_BURST", "PUBLISH_AUTH_RATE", "internal_app", "public_app"]

STATIC = Path(str(resources.files("gamesync") / "static"))

#: Failed publish authentications a source may make: this many at once, then this many a second
#: (a backend with a stale token notices at once; guessing the token costs a second a try).
PUBLISH_AUTH_BURST = 10
PUBLISH_AUTH_RATE = 1.0


def _probes(gw: Gateway) -> list[Route]:
    async def healthz(request: Request) -> Response:
        reasons = gw.not_healthy_reasons()
        if reasons:
            return JSONResponse({"healthy": False, "reasons": reasons}, status_code=503)
        return PlainTextResponse("ok")

    async def readyz(request: Request) -> Response:
        reasons = gw.not_ready_reasons()
        status = 200 if not reasons else 503
        return JSONResponse({"ready": not reasons, "reasons": reasons}, status_code=status)

    return [Route("/healthz", healthz), Route("/readyz", readyz)]


_GAME_PATH = re.compile(r"^/ws(?:/s/([0-9]{1,4}))?/games/([0-9]{1,18})$")
_SSE_GAME_PATH = re.compile(r"^/sse(?:/s/([0-9]{1,4}))?/games/([0-9]{1,18})$")


def _game_params(match: re.Match[str]) -> dict[str, int]:
    """`game_id`, and `shard` on a game-affine path (`/ws/s/{shard}/games/{id}`)."""
    shard, game = match.groups()
    params = {"game_id": int(game)}
    if shard is not None:
        params["shard"] = int(shard)
    return params


class PublicApp:
    """Websockets and event streams go straight to their endpoints; everything else to Starlette.

    Starlette's router and middleware stay on the stack of every long-lived connection (about
    3 KB of suspended frames each); the websocket and SSE paths need none of what they offer.
    """

    def __init__(self, endpoint: WebSocketEndpoint, sse: SseEndpoint, http: Starlette) -> None:
        self.endpoint = endpoint
        self.sse = sse
        self.http = http

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        kind = scope["type"]
        if kind == "websocket":
            path = scope["path"]
            if path == "/ws":
                return await self.endpoint(scope, receive, send)
            match = _GAME_PATH.match(path)
            if match is not None:
                scope["path_params"] = _game_params(match)
                return await self.endpoint(scope, receive, send)
        elif kind == "http" and scope["path"].startswith("/sse"):
            path = scope["path"]
            if path == "/sse":
                return await self.sse(scope, receive, send)
            match = _SSE_GAME_PATH.match(path)
            if match is not None:
                scope["path_params"] = _game_params(match)
                return await self.sse(scope, receive, send)
        return await self.http(scope, receive, send)


def public_app(
    gw: Gateway, *, seat_tokens: dict[str, str] | None = None, demo_game_id: int | None = None
) -> PublicApp:
    """Websocket and SSE endpoints, probes, the shard announcement; the console page too in dev
    mode (DESIGN §2, §6)."""
    announcement = gw.settings.shard_identity.announcement()

    async def shards(request: Request) -> Response:
        # Public and the same for every caller: any page may read it before connecting.
        return JSONResponse(
            announcement,
            headers={"cache-control": "no-cache", "access-control-allow-origin": "*"},
        )

    routes: list[Any] = [*_probes(gw), Route("/v1/shards", shards)]
    if gw.settings.dev_mode and gw.signer is not None:
        signer = gw.signer

        async def console(request: Request) -> Response:
            return FileResponse(STATIC / "index.html")

        async def console_config(request: Request) -> Response:
            host = request.headers.get("host", f"{gw.settings.host}:{gw.settings.port}")
            scheme = "wss" if request.url.scheme == "https" else "ws"
            return JSONResponse(
                {
                    "wsUrl": f"{scheme}://{host}/ws",
                    "token": sign_token(signer, "dev", ttl=24 * 3600),
                    "seatTokens": seat_tokens or {},
                    "demoGameId": demo_game_id,
                },
                headers={"cache-control": "no-store"},
            )

        routes += [
            Route("/", console),
            Route("/console-config.json", console_config),
            Mount("/static", app=StaticFiles(directory=STATIC, check_dir=False), name="static"),
        ]
    return PublicApp(
        WebSocketEndpoint(gw.services), SseEndpoint(gw.services), Starlette(routes=routes)
    )


def internal_app(gw: Gateway, publish_token: str | None) -> Starlette:
    """Metrics, stats and the publish endpoint; never routed by the ingress (DESIGN §3)."""
    limit = gw.settings.max_publish_bytes
    expected = publish_token.encode() if publish_token else None
    failures = KeyedBuckets(PUBLISH_AUTH_RATE, PUBLISH_AUTH_BURST, time.monotonic)

    async def metrics(request: Request) -> Response:
        return Response(generate_latest(gw.metrics.registry), media_type=CONTENT_TYPE_LATEST)

    async def stats(request: Request) -> Response:
        return JSONResponse(gw.stats())

    async def publish(request: Request) -> Response:
        result, response = await _publish(request)
        gw.metrics.http_published(result)
        return response

    async def _publish(request: Request) -> tuple[str, Response]:
        """The endpoint's answer, and its `gamesync_http_publishes_total` result."""
        if expected is None:
            return "disabled", JSONResponse(
                {"error": "publishing over HTTP is disabled"}, status_code=404
            )
        source = request.client.host if request.client is not None else ""
        wait = failures.limited(source)
        if wait > 0:
            # Too many wrong tokens from this source: no more guesses for a while, right or not.
            return "rate_limited", JSONResponse(
                {"error": "too many failed publish authentications; retry later"},
                status_code=429,
                headers={"retry-after": str(max(1, math.ceil(wait)))},
            )
        scheme, _, given = request.headers.get("authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not hmac.compare_digest(given.strip().encode(), expected):
            failures.spend(source)
            return "unauthorized", JSONResponse(
                {"error": "missing or wrong publish token"}, status_code=401
            )
        too_large = JSONResponse({"error": f"envelope larger than {limit} bytes"}, status_code=413)
        declared = request.headers.get("content-length")
        if declared is not None and declared.isdigit() and int(declared) > limit:
            return "too_large", too_large
        body = bytearray()
        async for chunk in request.stream():
            body += chunk
            if len(body) > limit:
                return "too_large", too_large
        try:
            envelope = parse_envelope(bytes(body), expected_game_id=request.path_params["game_id"])
        except EnvelopeError as exc:
            return "invalid", JSONResponse({"error": str(exc)}, status_code=400)
        envelope = stamp_published_at(envelope, time.time())
        try:
            published = await gw.publish(envelope)
        except BrokerUnavailable:
            return "unavailable", JSONResponse(
                {"error": "broker unavailable; retry"},
                status_code=503,
                headers={"retry-after": "1"},
            )
        return "published" if published else "stale", JSONResponse({"published": published})

    async def shed(request: Request) -> Response:
        """Move some connections to other pods, paced (docs/CONTRACTS-internal.md)."""
        declared = request.headers.get("content-length")
        if declared is None or not declared.isdigit() or int(declared) > 1024:
            return JSONResponse({"error": "a JSON body of at most 1 KB"}, status_code=400)
        try:
            body = await request.json()
            numbers = [body["connections"], body["seconds"], body.get("delaySeconds", 0)]
        except (ValueError, KeyError, TypeError, AttributeError):
            return JSONResponse(
                {"error": 'want {"connections": N, "seconds": T, "delaySeconds": D}'},
                status_code=400,
            )
        if not all(isinstance(n, int | float) and not isinstance(n, bool) for n in numbers):
            return JSONResponse({"error": "connections and seconds are numbers"}, status_code=400)
        try:
            count = gw.shedder.start(int(numbers[0]), float(numbers[1]), float(numbers[2]))
        except ShedRefused as exc:
            return JSONResponse({"error": exc.reason}, status_code=exc.status)
        return JSONResponse({"accepted": True, "connections": count}, status_code=202)

    routes = [
        Route("/metrics", metrics),
        Route("/v1/stats", stats),
        Route("/v1/shed", shed, methods=["POST"]),
        Route("/v1/games/{game_id:int}/snapshots", publish, methods=["POST"]),
        *_probes(gw),
    ]
    return Starlette(routes=routes)
