"""The `backend` policy against a real HTTP server standing in for Nommie's REST API."""

from __future__ import annotations

import contextlib
import json
import socket
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from wire import GatewayFactory, Keys, close_code, connect, recv_json, serve_app

ALLOWED = {("7", 1), ("8", 2)}


@dataclass
class Backend:
    url: str = ""
    calls: list[tuple[str, int]] = field(default_factory=list)
    failing: bool = False


@contextlib.asynccontextmanager
async def backend(keys: Keys) -> AsyncIterator[Backend]:
    """GET /api/games/{id}/snapshot: 200 for members, 403 otherwise, 500 while failing."""
    state = Backend()

    async def snapshot(request: Request) -> Response:
        game = int(request.path_params["game"])
        token = request.headers.get("authorization", "").removeprefix("Bearer ")
        user = keys.verify_sub(token)
        state.calls.append((user, game))
        if state.failing:
            return JSONResponse({"error": "db down"}, status_code=500)
        return JSONResponse({}, status_code=200 if (user, game) in ALLOWED else 403)

    app = Starlette(routes=[Route("/api/games/{game}/snapshot", snapshot)])
    async with serve_app(app) as base:
        state.url = f"{base}/api/games/{{gameId}}/snapshot"
        yield state


async def test_backend_policy_asks_with_the_users_own_token_and_caches(
    gateway_factory: GatewayFactory, keys: Keys
) -> None:
    async with backend(keys) as api:
        server = await gateway_factory(authz="backend", authz_url=api.url, authz_cache_seconds=30)
        async with await connect(server, token=keys.token("7")) as ws:
            await recv_json(ws)
            for game in (1, 2, 1):
                await ws.send(json.dumps({"type": "subscribe", "gameId": game}))
                answer = await recv_json(ws)
                if answer["type"] == "subscribed" and game == 1:
                    await ws.send(json.dumps({"type": "unsubscribe", "gameId": 1}))
                    assert (await recv_json(ws))["type"] == "unsubscribed"
                expected = "subscribed" if game == 1 else "error"
                assert answer["type"] == expected
        assert api.calls == [("7", 1), ("7", 2)]  # the second ask for game 1 came from the cache


async def test_backend_outage_answers_service_unavailable_never_allowed(
    gateway_factory: GatewayFactory, keys: Keys
) -> None:
    async with backend(keys) as api:
        api.failing = True
        server = await gateway_factory(authz="backend", authz_url=api.url)
        async with await connect(server, token=keys.token("7")) as ws:
            await recv_json(ws)
            await ws.send(json.dumps({"type": "subscribe", "gameId": 1}))
            error = await recv_json(ws)
            assert (error["code"], error["gameId"]) == ("service_unavailable", 1)
        async with await connect(server, "/ws/games/1", token=keys.token("7")) as implied:
            await recv_json(implied)
            assert (await recv_json(implied))["code"] == "service_unavailable"
            assert await close_code(implied) == 1013


async def test_unreachable_backend_answers_service_unavailable(
    gateway_factory: GatewayFactory, keys: Keys
) -> None:
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    dead = f"http://127.0.0.1:{sock.getsockname()[1]}/api/games/{{gameId}}/snapshot"
    sock.close()  # nothing listens there now
    server = await gateway_factory(authz="backend", authz_url=dead, authz_timeout_seconds=0.5)
    async with await connect(server, token=keys.token("7")) as ws:
        await recv_json(ws)
        await ws.send(json.dumps({"type": "subscribe", "gameId": 1}))
        assert (await recv_json(ws))["code"] == "service_unavailable"
