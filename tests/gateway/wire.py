"""Wire-level helpers for gateway tests: connect, receive with deadlines, publish."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from typing import Any

import httpx
import websockets
from websockets.asyncio.client import ClientConnection

from gamesync.server import GatewayServer
from gamesync_testing import PUBLISH_TOKEN as PUBLISH_TOKEN
from gamesync_testing import GatewayFactory as GatewayFactory
from gamesync_testing import Keys as Keys
from gamesync_testing import serve_app as serve_app


def ws_url(server: GatewayServer, path: str = "/ws") -> str:
    return server.public_url.replace("http://", "ws://") + path


async def connect(
    server: GatewayServer, path: str = "/ws", *, token: str | None = None, **kwargs: Any
) -> ClientConnection:
    """Open a websocket with `token` as a Bearer header (or none)."""
    headers = {"Authorization": f"Bearer {token}"} if token else None
    return await websockets.connect(
        ws_url(server, path), additional_headers=headers, open_timeout=5, **kwargs
    )


async def recv_json(ws: ClientConnection, timeout: float = 5.0) -> dict[str, Any]:
    """The next server message, decoded; fails the test after `timeout` seconds."""
    async with asyncio.timeout(timeout):
        raw = await ws.recv(decode=True)
    message = json.loads(raw)
    assert isinstance(message, dict)
    return message


async def recv_until(
    ws: ClientConnection, predicate: Callable[[dict[str, Any]], bool], timeout: float = 5.0
) -> dict[str, Any]:
    """Skip messages until one matches `predicate`."""
    async with asyncio.timeout(timeout):
        while True:
            message = json.loads(await ws.recv(decode=True))
            if predicate(message):
                return dict(message)


async def close_code(ws: ClientConnection, timeout: float = 5.0) -> int | None:
    """Read until the socket closes; return the close code the server sent."""
    async with asyncio.timeout(timeout):
        try:
            while True:
                await ws.recv()
        except websockets.ConnectionClosed:
            pass
    return ws.close_code


async def wait_until(predicate: Callable[[], bool], timeout: float = 5.0, what: str = "") -> None:
    """Poll `predicate` until true; fail after `timeout` seconds."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not predicate():
        if loop.time() > deadline:
            raise AssertionError(f"timed out waiting for {what or predicate}")
        await asyncio.sleep(0.01)


def envelope(game_id: int, version: int, **extra: Any) -> dict[str, Any]:
    doc: dict[str, Any] = {"gameId": game_id, "version": version, "snapshot": {"v": version}}
    doc.update(extra)
    return doc


async def publish(
    server: GatewayServer,
    doc: dict[str, Any] | bytes,
    *,
    game_id: int | None = None,
    token: str = PUBLISH_TOKEN,
) -> httpx.Response:
    """POST an envelope to the internal publish endpoint."""
    body = doc if isinstance(doc, bytes) else json.dumps(doc).encode()
    gid = game_id if game_id is not None else (doc["gameId"] if isinstance(doc, dict) else 0)
    async with httpx.AsyncClient(base_url=server.internal_url, timeout=5) as client:
        return await client.post(
            f"/v1/games/{gid}/snapshots",
            content=body,
            headers={"Authorization": f"Bearer {token}"},
        )
