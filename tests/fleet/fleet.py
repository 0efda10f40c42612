"""A fleet on one machine: `gamesync gateway` processes on real Redis, a Service stand-in, and
real websocket clients that behave as the shipped clients do (wait out `retryAfterMs`, then
reconnect through the Service and resubscribe).

The Service stand-in is what kube-proxy and the endpoints controller do: a new connection goes
to a random pod among those whose `/readyz` answered 200 at its last poll (every 50 ms).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import random
import re
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import httpx
import websockets

from gamesync.publisher import Publisher

__all__ = ["Client", "Pod", "Service", "Tally", "Writer", "start_pod", "wait_until"]


async def wait_until(predicate: Callable[[], Any], what: str, timeout: float) -> float:
    """Poll `predicate` until truthy; the seconds it took. AssertionError after `timeout`."""
    loop = asyncio.get_running_loop()
    started = loop.time()
    while not predicate():
        if loop.time() - started > timeout:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        await asyncio.sleep(0.02)  # poll the condition; the processes run meanwhile
    return loop.time() - started


@dataclass
class Pod:
    name: str
    proc: asyncio.subprocess.Process
    public: str
    internal: str

    @property
    def ws(self) -> str:
        return self.public.replace("http://", "ws://")

    async def stats(self) -> dict[str, Any]:
        async with httpx.AsyncClient(base_url=self.internal, timeout=5) as api:
            result: dict[str, Any] = (await api.get("/v1/stats")).json()
            return result

    async def stop(self) -> None:
        if self.proc.returncode is None:
            self.proc.kill()
            await self.proc.wait()


async def start_pod(name: str, broker: str, keys: str, *args: str) -> Pod:
    """A `gamesync gateway` process on free loopback ports, started and ready."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "gamesync",
        "gateway",
        "--port", "0",
        "--internal-port", "0",
        "--broker", broker,
        "--keys", keys,
        "--authz", "open",
        "--pod-name", name,
        *args,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.DEVNULL,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )  # fmt: skip
    assert proc.stdout is not None
    async with asyncio.timeout(30):
        while True:
            line = (await proc.stdout.readline()).decode()
            if not line:
                raise AssertionError(f"gateway {name} exited early")
            match = re.search(r"GAMESYNC_READY public=(\S+) internal=(\S+)", line)
            if match:
                return Pod(name, proc, match.group(1), match.group(2))


class Service:
    """Routes each new connection to a random ready pod, as a Kubernetes Service does."""

    def __init__(self, rng: random.Random, period: float = 0.05) -> None:
        self.pods: list[Pod] = []
        self.endpoints: list[Pod] = []
        self._rng = rng
        self._period = period
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._poll())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)

    async def _poll(self) -> None:
        async with httpx.AsyncClient(timeout=1) as api:
            while True:
                ready = []
                for pod in list(self.pods):
                    with contextlib.suppress(httpx.HTTPError):
                        if (await api.get(f"{pod.internal}/readyz")).status_code == 200:
                            ready.append(pod)
                self.endpoints = ready
                await asyncio.sleep(self._period)  # the endpoints controller's pace

    def pick(self) -> Pod | None:
        return self._rng.choice(self.endpoints) if self.endpoints else None


@dataclass
class Tally:
    """Clients between a close and their next `subscribed`, now and at most."""

    away: int = 0
    peak: int = 0

    def leave(self) -> None:
        self.away += 1
        self.peak = max(self.peak, self.away)

    def back(self) -> None:
        self.away -= 1


@dataclass
class Client:
    """One player on one game: what it saw, where it was, how often it moved."""

    index: int
    token: str
    game: int
    service: Service
    tally: Tally
    rng: random.Random
    first: Pod | None = None
    seen: int = 0  # the newest gameVersion held
    out_of_order: int = 0  # a version older than one held
    repeats: int = 0  # the same version twice on one connection
    attempts: int = 0  # connection attempts, failed ones included
    moves: int = 0  # closes 1012 after a `reconnect` hint
    pods: list[str] = field(default_factory=list)  # where each session was subscribed
    subscribed: bool = False

    @property
    def sessions(self) -> int:
        return len(self.pods)

    async def run(self, stop: asyncio.Event) -> None:
        pod = self.first
        while not stop.is_set():
            if pod is None:
                pod = self.service.pick()
            if pod is None:  # no ready pod yet
                await asyncio.sleep(0.05)
                continue
            self.attempts += 1
            retry_ms = None
            code = None
            try:
                async with websockets.connect(
                    f"{pod.ws}/ws/games/{self.game}",
                    additional_headers={"Authorization": f"Bearer {self.token}"},
                    open_timeout=5,
                    close_timeout=1,
                ) as ws:
                    held_here: set[int] = set()
                    async for raw in ws:
                        message = json.loads(raw)
                        kind = message["type"]
                        if kind == "subscribed":
                            self.pods.append(pod.name)
                            if not self.subscribed:
                                self.subscribed = True
                                if len(self.pods) > 1:
                                    self.tally.back()
                        elif kind == "snapshot":
                            version = int(message["gameVersion"])
                            if version in held_here:
                                self.repeats += 1
                            elif version < self.seen:
                                self.out_of_order += 1
                            held_here.add(version)
                            self.seen = max(self.seen, version)
                        elif kind == "reconnect":
                            retry_ms = int(message["retryAfterMs"])
                    code = ws.close_code
            except (OSError, TimeoutError, websockets.InvalidHandshake):
                code = None
            except websockets.ConnectionClosed as exc:
                code = exc.rcvd.code if exc.rcvd else None
            if stop.is_set():
                return
            if self.subscribed:
                self.subscribed = False
                self.tally.leave()
            pod = None
            if code == 1012 and retry_ms is not None:
                self.moves += 1
                await asyncio.sleep(retry_ms / 1000)  # as told: the jitter spreads the herd
            else:
                await asyncio.sleep(self.rng.uniform(0.1, 0.5))  # a refused or failed attempt


class Writer:
    """The game backend: a new version of every game every `period` seconds, through Redis."""

    def __init__(self, broker: str, games: Sequence[int], period: float) -> None:
        self.games = list(games)
        self.period = period
        self.version = 0
        self.last: dict[int, int] = {}  # game -> the newest version published
        self._publisher = Publisher(broker)
        self._task: asyncio.Task[None] | None = None
        self._stopping = asyncio.Event()

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run())

    async def _run(self) -> None:
        while not self._stopping.is_set():
            self.version += 1
            for game in self.games:
                envelope = {"gameId": game, "version": self.version, "snapshot": {"v": 1}}
                assert await self._publisher.publish(envelope)
                self.last[game] = self.version
            with contextlib.suppress(TimeoutError):  # the backend's pace, or a stop
                await asyncio.wait_for(self._stopping.wait(), self.period)

    async def stop(self) -> dict[int, int]:
        """Stop writing; the newest version each game got."""
        self._stopping.set()
        if self._task is not None:
            await self._task  # ends after the round in progress: `last` is exact
        await self._publisher.aclose()
        return dict(self.last)
