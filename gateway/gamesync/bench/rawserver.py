"""The raw baseline: a bare ``websockets`` server that fans out with ``broadcast()``.

Run as ``python -m gamesync.bench.rawserver PORT SIZE``. It speaks just enough of protocol v1
for the load client (``subscribed`` on connect to ``/ws/games/{id}``, ``snapshot`` messages)
and is driven by stdin lines: ``fanout ROUNDS`` broadcasts ROUNDS snapshots to every game's
sockets back to back and answers a JSON line with the loop time and the last versions.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import resource
import sys
import time

from websockets.asyncio.server import ServerConnection, broadcast, serve

from gamesync.bench.payload import SnapshotFactory, server_snapshot_message

__all__ = ["main"]


class RawFanout:
    """Per-game socket sets and version counters."""

    def __init__(self, size: int) -> None:
        self.factory = SnapshotFactory(size)
        self.games: dict[int, set[ServerConnection]] = {}
        self.versions: dict[int, int] = {}

    async def handler(self, ws: ServerConnection) -> None:
        path = ws.request.path if ws.request is not None else ""
        try:
            game = int(path.rstrip("/").rsplit("/", 1)[-1])
        except ValueError:
            await ws.close(4400, "bad path")
            return
        members = self.games.setdefault(game, set())
        members.add(ws)
        try:
            await ws.send(f'{{"type":"subscribed","version":1,"gameId":{game}}}')
            await ws.wait_closed()
        finally:
            members.discard(ws)

    async def fanout(self, rounds: int) -> dict[str, object]:
        started = time.monotonic()
        for _ in range(rounds):
            for game, members in self.games.items():
                version = self.versions.get(game, 0) + 1
                self.versions[game] = version
                data = self.factory.data(time.monotonic(), version)
                broadcast(members, server_snapshot_message(game, version, data))
            await asyncio.sleep(0)
        return {"loop_secs": time.monotonic() - started, "last": dict(self.versions)}


async def _serve(port: int, size: int) -> None:
    fan = RawFanout(size)
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    async with serve(fan.handler, "127.0.0.1", port, compression=None, backlog=4096, max_size=4096):
        print(f"GAMESYNC_READY public=http://127.0.0.1:{port}", flush=True)
        while True:
            line = (await reader.readline()).decode().split()
            if not line or line[0] == "quit":
                break
            if line[0] == "fanout":
                print(json.dumps(await fan.fanout(int(line[1]))), flush=True)


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    with contextlib.suppress(ValueError, OSError):
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    import uvloop

    uvloop.run(_serve(int(args[0]), int(args[1]) if len(args) > 1 else 2048))
    return 0


if __name__ == "__main__":
    sys.exit(main())
