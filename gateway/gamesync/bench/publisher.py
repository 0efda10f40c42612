"""The bench publisher: a separate process that publishes paced or back-to-back snapshots.

Run as ``python -m gamesync.bench.publisher CONFIG_JSON``, driven by JSON lines on stdin:
``{"cmd": "run", "rate": R, "seconds": T}`` publishes R snapshots per second round-robin over
the games for T seconds; ``{"cmd": "burst", "rounds": N}`` publishes N versions per game back
to back, each after the previous one was acknowledged. Every snapshot carries ``t`` (CLOCK_MONOTONIC
at publish) in its data. Targets: the gateway's HTTP publish endpoint, Redis (the package's Lua
script when present, else SET + PUBLISH), a python-socketio write-only emitter, the polling server.
"""

from __future__ import annotations

import asyncio
import json
import sys
import time
from collections import deque
from importlib import resources
from typing import Any

from gamesync.bench.payload import SnapshotFactory, envelope_json
from gamesync.bench.resp import RespClient
from gamesync.broker.redis.script import script_keys

__all__ = ["main"]

LATE_SECONDS = 0.005


class HttpTarget:
    """HTTP/1.1 keep-alive, pipelined POSTs; responses are matched in order."""

    def __init__(self, host: str, port: int, path: str, token: str | None, envelope: bool) -> None:
        self.host, self.port, self.path, self.token = host, port, path, token
        self.envelope = envelope
        self.pending: deque[asyncio.Future[int]] = deque()
        self.statuses: dict[str, int] = {}

    async def open(self) -> None:
        self.reader, self.writer = await asyncio.open_connection(self.host, self.port)
        self.task = asyncio.create_task(self._responses())

    async def ensure_open(self) -> None:
        """Reconnect if the server closed the idle keep-alive connection (uvicorn: after 5 s)."""
        if self.task.done() or self.writer.is_closing():
            self.task.cancel()
            self.writer.close()
            await self.open()

    async def _responses(self) -> None:
        try:
            await self._read_responses()
        except (asyncio.IncompleteReadError, ConnectionError) as exc:
            while self.pending:
                fut = self.pending.popleft()
                if not fut.done():
                    fut.set_exception(ConnectionError(f"publish connection closed: {exc!r}"))

    async def _read_responses(self) -> None:
        while True:
            head = await self.reader.readuntil(b"\r\n\r\n")
            status = int(head[9:12])
            length = 0
            for line in head.split(b"\r\n")[1:]:
                name, _, value = line.partition(b":")
                if name.strip().lower() == b"content-length":
                    length = int(value)
            if length:
                await self.reader.readexactly(length)
            self.statuses[str(status)] = self.statuses.get(str(status), 0) + 1
            fut = self.pending.popleft()
            if not fut.done():
                fut.set_result(status)

    def publish(self, game: int, version: int, data: str) -> asyncio.Future[int]:
        body = (
            envelope_json(game, version, data, time.time())
            if self.envelope
            else f'{{"gameId":{game},"gameVersion":{version},"data":{data}}}'
        ).encode()
        auth = f"Authorization: Bearer {self.token}\r\n" if self.token else ""
        head = (
            f"POST {self.path.format(id=game)} HTTP/1.1\r\nHost: {self.host}:{self.port}\r\n"
            f"Content-Type: application/json\r\n{auth}Content-Length: {len(body)}\r\n\r\n"
        )
        fut: asyncio.Future[int] = asyncio.get_running_loop().create_future()
        self.pending.append(fut)
        self.writer.write(head.encode() + body)
        return fut

    async def close(self) -> None:
        self.task.cancel()
        self.writer.close()


class RedisTarget:
    """EVALSHA of the package's publish script, or SET + PUBLISH until that script exists."""

    def __init__(self, host: str, port: int) -> None:
        self.host, self.port = host, port
        self.pending: deque[asyncio.Future[int]] = deque()
        self.sha: str | None = None
        self.errors = 0

    async def open(self) -> None:
        self.client = await RespClient.connect(self.host, self.port)
        script = resources.files("gamesync").joinpath("lua/publish.lua")
        if script.is_file():
            sha = await self.client.command("SCRIPT", "LOAD", script.read_text())
            self.sha = sha.decode() if isinstance(sha, bytes) else str(sha)
        self.task = asyncio.create_task(self._replies())

    async def _replies(self) -> None:
        while True:
            try:
                await self.client.read_reply()
            except RuntimeError:
                self.errors += 1
            fut = self.pending.popleft()
            if not fut.done():
                fut.set_result(200)

    def publish(self, game: int, version: int, data: str) -> asyncio.Future[int]:
        envelope = envelope_json(game, version, data, time.time())
        loop = asyncio.get_running_loop()
        if self.sha:
            # KEYS: latest key, channel, version key; ARGV: envelope, version, TTL seconds.
            self.client.write("EVALSHA", self.sha, 3, *script_keys(game), envelope, version, 86400)
            fut: asyncio.Future[int] = loop.create_future()
            self.pending.append(fut)
            return fut
        self.client.write("SET", f"game:{{{game}}}:latest", envelope, "EX", 86400)
        self.client.write("PUBLISH", f"game:{{{game}}}", envelope)
        self.pending.append(loop.create_future())
        fut = loop.create_future()
        self.pending.append(fut)
        return fut

    async def close(self) -> None:
        self.task.cancel()
        await self.client.close()


class SocketioTarget:
    """python-socketio's write-only emitter (``AsyncRedisManager(url, write_only=True)``).

    Emits run one after another from a single worker, the way one backend process would call
    ``emit``; ``t`` is re-stamped just before each emit so that a backlog in this process (the
    emitter is slower than a raw PUBLISH) is not charged to the socket.io servers' latency.
    Lateness still shows as ``late`` publishes and a lower achieved rate.
    """

    def __init__(self, url: str) -> None:
        self.url = url
        self.queue: asyncio.Queue[tuple[int, int, str, asyncio.Future[int]]] = asyncio.Queue()

    async def open(self) -> None:
        import socketio

        self.mgr = socketio.AsyncRedisManager(self.url, write_only=True)
        self.task = asyncio.create_task(self._worker())

    def publish(self, game: int, version: int, data: str) -> asyncio.Future[int]:
        fut: asyncio.Future[int] = asyncio.get_running_loop().create_future()
        self.queue.put_nowait((game, version, data, fut))
        return fut

    async def _worker(self) -> None:
        while True:
            game, version, data, fut = await self.queue.get()
            parsed = json.loads(data)
            parsed["t"] = time.monotonic()
            message = {"gameId": game, "gameVersion": version, "data": parsed}
            try:
                await self.mgr.emit("m", message, room=f"game:{game}", namespace="/")
            except Exception as exc:  # report, keep emitting
                fut.set_exception(RuntimeError(f"emit failed: {exc}"))
            else:
                fut.set_result(200)

    async def close(self) -> None:
        self.task.cancel()


Target = HttpTarget | RedisTarget | SocketioTarget


def make_target(spec: dict[str, Any]) -> Target:
    kind = spec["kind"]
    if kind == "http":
        return HttpTarget(
            spec["host"], spec["port"], "/v1/games/{id}/snapshots", spec.get("token"), True
        )
    if kind == "poll":
        return HttpTarget(spec["host"], spec["port"], "/games/{id}/publish", None, False)
    if kind == "redis":
        return RedisTarget(spec["host"], spec["port"])
    if kind == "socketio":
        return SocketioTarget(spec["url"])
    raise ValueError(f"unknown target kind {kind!r}")


class Publisher:
    def __init__(self, config: dict[str, Any]) -> None:
        self.games = [config.get("game_base", 1) + i for i in range(config["games"])]
        self.factory = SnapshotFactory(config.get("size", 2048))
        self.targets = [make_target(t) for t in config["targets"]]
        self.versions = {g: int(config.get("start", 0)) for g in self.games}

    async def open(self) -> None:
        for target in self.targets:
            await target.open()

    def _one(self, game: int) -> list[asyncio.Future[int]]:
        version = self.versions[game] + 1
        self.versions[game] = version
        data = self.factory.data(time.monotonic(), version)
        return [t.publish(game, version, data) for t in self.targets]

    async def _ensure_open(self) -> None:
        for target in self.targets:
            if isinstance(target, HttpTarget):
                await target.ensure_open()

    async def run(self, rate: float, seconds: float) -> dict[str, Any]:
        await self._ensure_open()
        first = {g: v + 1 for g, v in self.versions.items()}
        total = int(rate * seconds)
        late = 0
        futures: list[asyncio.Future[int]] = []
        started = time.monotonic()
        for i in range(total):
            due = started + i / rate
            delay = due - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            elif -delay > LATE_SECONDS:
                late += 1
            futures += self._one(self.games[i % len(self.games)])
            if len(futures) > 4096:
                await asyncio.wait_for(asyncio.gather(*futures), 30)
                futures = []
        await asyncio.wait_for(asyncio.gather(*futures), 30)
        return self._result(first, total, late, started)

    async def burst(self, rounds: int, window: int = 1) -> dict[str, Any]:
        """Publish ``rounds`` versions per game back to back, ``window`` requests in flight."""
        await self._ensure_open()
        first = {g: v + 1 for g, v in self.versions.items()}
        started = time.monotonic()
        inflight: deque[asyncio.Future[list[int]]] = deque()
        for _ in range(rounds):
            for game in self.games:
                if len(inflight) >= window:
                    await asyncio.wait_for(inflight.popleft(), 30)
                inflight.append(asyncio.gather(*self._one(game)))
        for fut in inflight:
            await asyncio.wait_for(fut, 30)
        return self._result(first, rounds * len(self.games), 0, started)

    def _result(self, first: dict[int, int], n: int, late: int, started: float) -> dict[str, Any]:
        statuses: dict[str, int] = {}
        for t in self.targets:
            if isinstance(t, HttpTarget):
                for k, v in t.statuses.items():
                    statuses[k] = statuses.get(k, 0) + v
        return {
            "published": n,
            "late": late,
            "started": started,
            "secs": time.monotonic() - started,
            "first": first,
            "last": dict(self.versions),
            "statuses": statuses,
        }


def _emit(obj: dict[str, Any]) -> None:
    sys.stdout.write(json.dumps(obj) + "\n")
    sys.stdout.flush()


async def _serve(config: dict[str, Any]) -> None:
    pub = Publisher(config)
    await pub.open()
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    _emit({"event": "ready"})
    while True:
        line = await reader.readline()
        if not line:
            break
        cmd = json.loads(line)
        try:
            if cmd["cmd"] == "run":
                _emit(await pub.run(float(cmd["rate"]), float(cmd["seconds"])))
            elif cmd["cmd"] == "burst":
                _emit(await pub.burst(int(cmd["rounds"]), int(cmd.get("window", 1))))
            elif cmd["cmd"] == "quit":
                break
        except (OSError, TimeoutError, RuntimeError) as exc:
            _emit({"error": f"{type(exc).__name__}: {exc}"})
    for target in pub.targets:
        await target.close()


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    import uvloop

    uvloop.run(_serve(json.loads(args[0])))
    return 0


if __name__ == "__main__":
    sys.exit(main())
