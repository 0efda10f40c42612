"""Test-side parts of the fan-out tests: websocket players, publishing, condition waits."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import httpx
from websockets.asyncio.client import ClientConnection

from gamesync.server import GatewayServer
from gamesync_testing import PUBLISH_TOKEN as PUBLISH_TOKEN
from gamesync_testing import Keys as Keys

PodFactory = Callable[..., Awaitable[GatewayServer]]

#: fast probes and reconnects so outage tests finish in seconds (broker URL query options)
FAST = "probe_interval=0.3&probe_timeout=0.5&reconnect_base=0.05&reconnect_cap=0.3"


async def eventually(
    condition: Callable[[], Awaitable[bool] | bool], timeout: float = 10.0, what: str = ""
) -> None:
    """Re-check `condition` until it holds, failing after `timeout` (a deadline, not a sleep)."""
    deadline = time.monotonic() + timeout
    while True:
        result = condition()
        if isinstance(result, Awaitable):
            result = await result
        if result:
            return
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what or condition}")
        await asyncio.sleep(0.01)  # yield between checks; the deadline decides, not the sleep


@dataclass
class Player:
    """A websocket client that records every snapshot version it receives, per game."""

    ws: ClientConnection
    pod: GatewayServer
    versions: dict[int, list[int]] = field(default_factory=dict)
    frames: list[dict[str, Any]] = field(default_factory=list)
    changed: asyncio.Condition = field(default_factory=asyncio.Condition)
    reader: asyncio.Task[None] | None = None
    closed: bool = False

    async def read(self) -> None:
        try:
            async for raw in self.ws:
                frame = json.loads(raw)
                async with self.changed:
                    self.frames.append(frame)
                    if frame["type"] == "snapshot":
                        self.versions.setdefault(frame["gameId"], []).append(frame["gameVersion"])
                    self.changed.notify_all()
        finally:
            async with self.changed:
                self.closed = True
                self.changed.notify_all()

    async def wait(self, predicate: Callable[[], bool], timeout: float = 10.0) -> None:
        async with asyncio.timeout(timeout), self.changed:
            await self.changed.wait_for(predicate)

    async def subscribe(self, game_id: int, timeout: float = 10.0) -> None:
        seen = len(self.frames)
        await self.ws.send(json.dumps({"type": "subscribe", "gameId": game_id}))

        def answered() -> bool:
            return any(
                f.get("gameId") == game_id and f["type"] in ("subscribed", "error")
                for f in self.frames[seen:]
            )

        await self.wait(answered, timeout)
        answer = next(
            f for f in self.frames[seen:] if f.get("gameId") == game_id and f["type"] != "snapshot"
        )
        assert answer["type"] == "subscribed", answer
        # `subscribed` goes out before the pod has joined the game; wait for the join too
        hub = self.pod.gateway.hub
        await eventually(
            lambda: game_id in hub.topics and hub.topics[game_id].ready.is_set(),
            timeout,
            f"the pod to join game {game_id}",
        )

    async def unsubscribe(self, game_id: int) -> None:
        seen = len(self.frames)
        await self.ws.send(json.dumps({"type": "unsubscribe", "gameId": game_id}))
        await self.wait(
            lambda: any(
                f["type"] == "unsubscribed" and f.get("gameId") == game_id
                for f in self.frames[seen:]
            )
        )

    def last(self, game_id: int) -> int | None:
        seen = self.versions.get(game_id)
        return seen[-1] if seen else None

    async def wait_version(self, game_id: int, version: int, timeout: float = 10.0) -> None:
        await self.wait(lambda: (self.last(game_id) or -1) >= version, timeout)


PlayerFactory = Callable[..., Awaitable[Player]]


def envelope(game_id: int, version: int, **extra: Any) -> dict[str, Any]:
    return {"gameId": game_id, "version": version, "snapshot": {"v": version}, **extra}


async def http_publish(pod: GatewayServer, game_id: int, version: int, **extra: Any) -> bool:
    async with httpx.AsyncClient() as client:
        response = await client.post(
            f"{pod.internal_url}/v1/games/{game_id}/snapshots",
            json=envelope(game_id, version, **extra),
            headers={"Authorization": f"Bearer {PUBLISH_TOKEN}"},
        )
    response.raise_for_status()
    return bool(response.json()["published"])


async def readyz(pod: GatewayServer) -> bool:
    async with httpx.AsyncClient() as client:
        response = await client.get(f"{pod.public_url}/readyz")
    return response.status_code == 200
