"""A process of its own for the test's clients or its backend, driven over stdin/stdout.

The scenarios measure the connected clients' latency while something else (a reconnect storm,
hostile clients) loads the gateway. Run in the test's own event loop, that load would also
delay the measuring clients and the feed that stamps each commit's time; in processes of their
own they see only what the gateway does. Loop times are `time.monotonic()`, the same clock in
every process on the machine, so windows given by the parent mean the same here.

Commands (one JSON object a line, each answered by one line; an `error` key means it failed):
  {"cmd": "swarm", "targets": [[host, port]], "count": N, "games": [...], "signer": PATH,
   "user_offset": K, "sources": [...], "reconnect": bool, "move_on": bool,
   "concurrency": C, "wait": bool}                        -> {"ok": true} (connected if wait)
  {"cmd": "status", "newest": {game: version}}            -> the swarm's ledger, summed
  {"cmd": "latency", "windows": [[start, end], ...]}      -> {"p50", "p99", "n": [...]}
  {"cmd": "feed", "redis": URL, "games": [...], "rate": R, "pad": B, "members": {...}}
                                                          -> {"committed": {...}} (first round out)
  {"cmd": "committed"}                                    -> {"committed": {...}}
  {"cmd": "feed_stop"}                                    -> {"committed": {...}} (all published)
  {"cmd": "stop"}                                         -> {"ok": true}, then exit
"""

from __future__ import annotations

import asyncio
import gc
import json
import os
import signal
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from chaos.feed import Feed
from chaos.processes import die_with_parent
from chaos.swarm import Client, Policy, Swarm, percentile

__all__ = ["Child"]


class Child:
    """The parent's handle on a child process."""

    def __init__(self, proc: asyncio.subprocess.Process) -> None:
        self.proc = proc

    @classmethod
    async def spawn(cls) -> Child:
        tests = os.path.dirname(os.path.dirname(__file__))  # tests/, for `chaos.child`
        path = os.pathsep.join([tests, os.environ.get("PYTHONPATH", "")])
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "chaos.child",
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            env={**os.environ, "PYTHONPATH": path},
            preexec_fn=die_with_parent,
        )  # fmt: skip
        return cls(proc)

    async def call(self, timeout: float = 60.0, **command: Any) -> dict[str, Any]:
        assert self.proc.stdin is not None
        assert self.proc.stdout is not None
        self.proc.stdin.write(json.dumps(command).encode() + b"\n")
        await self.proc.stdin.drain()
        async with asyncio.timeout(timeout):
            line = await self.proc.stdout.readline()
        if not line:
            raise AssertionError(f"the child process ended (exit {await self.proc.wait()})")
        answer: dict[str, Any] = json.loads(line)
        if "error" in answer:
            raise AssertionError(f"child: {answer['error']}")
        return answer

    # clients ------------------------------------------------------------------------------

    async def swarm(
        self,
        targets: Sequence[tuple[str, int]],
        count: int,
        games: Sequence[int],
        signer: Path,
        *,
        user_offset: int = 0,
        sources: Sequence[str] = ("127.0.0.1",),
        reconnect: bool = False,
        move_on: bool = True,
        concurrency: int = 200,
        wait: bool = True,
    ) -> None:
        """Start `count` clients (users `u{user_offset + i}`); with `wait`, until connected."""
        await self.call(
            300,
            cmd="swarm",
            targets=[list(t) for t in targets],
            count=count,
            games=list(games),
            signer=str(signer),
            user_offset=user_offset,
            sources=list(sources),
            reconnect=reconnect,
            move_on=move_on,
            concurrency=concurrency,
            wait=wait,
        )

    async def status(
        self, newest: dict[int, int] | None = None, *, since: float = 0.0
    ) -> dict[str, Any]:
        """The ledger; `behind` counts clients short of `newest`, `*_since` counts from `since`."""
        versions = {str(k): v for k, v in (newest or {}).items()}
        return await self.call(cmd="status", newest=versions, since=since)

    async def latency(self, *windows: tuple[float, float]) -> dict[str, list[float]]:
        """p50, p99 (seconds) and n of the latencies received in each (start, end) window."""
        return await self.call(cmd="latency", windows=[list(w) for w in windows])

    async def until(
        self, what: str, done: Callable[[dict[str, Any]], bool], timeout: float
    ) -> float:
        """Poll `status` until `done(status)` (a deadline, every 50 ms); seconds taken."""
        loop = asyncio.get_running_loop()
        start = loop.time()
        while not done(await self.status()):
            if loop.time() - start > timeout:
                raise AssertionError(f"timed out after {timeout}s waiting for {what}")
            await asyncio.sleep(0.05)  # re-check period
        return loop.time() - start

    async def until_current(self, newest: dict[int, int], timeout: float = 20.0) -> float:
        """Wait until every client holds `newest` of its game (a deadline); seconds taken."""
        loop = asyncio.get_running_loop()
        start = loop.time()
        while (await self.status(newest))["behind"]:
            if loop.time() - start > timeout:
                raise AssertionError(f"clients still behind after {timeout}s")
            await asyncio.sleep(0.05)  # re-check period
        return loop.time() - start

    # the backend --------------------------------------------------------------------------

    async def feed(
        self,
        redis_url: str,
        games: Sequence[int],
        rate: float,
        *,
        pad: int = 64,
        members: dict[int, list[str]] | None = None,
    ) -> dict[int, int]:
        """Commit every game once (published), then `rate` commits a second until stopped."""
        answer = await self.call(
            cmd="feed",
            redis=redis_url,
            games=list(games),
            rate=rate,
            pad=pad,
            members={str(g): m for g, m in (members or {}).items()},
        )
        return _versions(answer)

    async def committed(self) -> dict[int, int]:
        return _versions(await self.call(cmd="committed"))

    async def feed_stop(self) -> dict[int, int]:
        """Stop committing; once everything committed is published, the newest versions."""
        return _versions(await self.call(cmd="feed_stop"))

    async def stop(self) -> None:
        if self.proc.returncode is None:
            try:
                await self.call(30, cmd="stop")
                await asyncio.wait_for(self.proc.wait(), 10)
            except (AssertionError, TimeoutError, BrokenPipeError, ConnectionResetError):
                self.proc.kill()
                await self.proc.wait()


def _versions(answer: dict[str, Any]) -> dict[int, int]:
    return {int(k): int(v) for k, v in answer["committed"].items()}


# the child side ----------------------------------------------------------------------------


def _unclean(client: Client) -> bool:
    """Closed otherwise than with a 1013 that followed a `reconnect` hint."""
    codes = [code for _, code in client.closes]
    return any(code != 1013 for code in codes) or len(client.hints) < len(codes)


def _summary(swarm: Swarm, newest: dict[int, int], since: float) -> dict[str, Any]:
    clients = swarm.clients
    subscribed_at = [c.subscribed_at for c in clients]
    gaps = [b - a for c in clients for a, b in zip(c.pings, c.pings[1:], strict=False)]
    return {
        "clients": len(clients),
        "subscribed": swarm.subscribed(),
        "all_subscribed_once": all(t is not None for t in subscribed_at),
        "last_subscribed_at": max((t for t in subscribed_at if t is not None), default=None),
        "behind": swarm.behind(newest) if newest else None,
        "closes": sum(len(c.closes) for c in clients),
        #: closes and connection attempts from loop time `since` on (a steady phase's start)
        "closes_since": sum(t >= since for c in clients for t, _ in c.closes),
        "attempts_since": sum(t >= since for c in clients for t in c.attempted),
        "close_codes": {str(k): v for k, v in swarm.close_codes.items()},
        "held_back_1013": sum(code == 1013 for c in clients for _, code in c.closes),
        "unclean": sum(_unclean(c) for c in clients),
        "http_5xx": sum(n for c in clients for s, n in c.refusals.items() if s >= 500),
        "refusals": {str(s): n for c in clients for s, n in c.refusals.items()},
        "timeouts": sum(c.timeouts for c in clients),
        "failed_joins": sum(c.failed_joins for c in clients),
        "retry_after_ms_max": max((ms for c in clients for _, ms in c.hints), default=0),
        "reconnects": swarm.reconnects,
        "out_of_order": sum(c.out_of_order for c in clients),
        "errors": dict(swarm.errors),
        "violations": swarm.violations()[:20],
        #: the longest silence between two server pings any client saw (the sweeper's pulse)
        "max_ping_gap": max(gaps, default=None),
        "pings": sum(len(c.pings) for c in clients),
    }


def _tokens(command: dict[str, Any]) -> Callable[[int], str]:
    """Client i's token: user `u{user_offset + i}`, signed with the signer file given."""
    from gamesync.keys import load_signer, sign_token

    signer = load_signer(Path(command["signer"]))
    offset = int(command["user_offset"])
    return lambda i: sign_token(signer, f"u{offset + i}", ttl=3600)


class _Serving:
    """The child's state: at most one swarm and one feed."""

    def __init__(self) -> None:
        self.swarm: Swarm | None = None
        self.feed: Feed | None = None

    async def handle(self, command: dict[str, Any]) -> dict[str, Any]:
        cmd = command["cmd"]
        if cmd == "swarm":
            policy = Policy(reconnect=command["reconnect"], move_on=command["move_on"])
            self.swarm = Swarm(
                [tuple(t) for t in command["targets"]], policy=policy, sources=command["sources"]
            )
            clients = self.swarm.add(command["count"], command["games"], _tokens(command))
            connecting = self.swarm.connect(clients, concurrency=command["concurrency"])
            if command["wait"]:
                await connecting
            else:
                self.swarm.spawn(connecting)
            return {"ok": True}
        if cmd == "status":
            assert self.swarm is not None
            newest = {int(k): int(v) for k, v in command.get("newest", {}).items()}
            return _summary(self.swarm, newest, float(command.get("since", 0.0)))
        if cmd == "latency":
            assert self.swarm is not None
            samples = [self.swarm.latencies(a, b) for a, b in command["windows"]]
            return {
                "p50": [percentile(s, 50) for s in samples],
                "p99": [percentile(s, 99) for s in samples],
                "n": [len(s) for s in samples],
            }
        if cmd == "feed":
            members = {int(g): m for g, m in command["members"].items()}
            self.feed = Feed(
                command["redis"],
                command["games"],
                command["rate"],
                pad=command["pad"],
                members=members,
            )
            for game in command["games"]:
                self.feed.commit(game)
            if not await self.feed.flush(30):
                return {"error": "the first round of commits was not published in 30 s"}
            self.feed.start()
            return {"committed": self.feed.committed}
        if cmd == "committed":
            assert self.feed is not None
            return {"committed": self.feed.committed}
        if cmd == "feed_stop":
            assert self.feed is not None
            await self.feed.stop()
            if not await self.feed.flush(30):
                return {"error": "committed snapshots still unpublished after 30 s"}
            return {"committed": self.feed.committed}
        return {"error": f"unknown command {cmd!r}"}

    async def close(self) -> None:
        swarm, feed, self.swarm, self.feed = self.swarm, self.feed, None, None
        if swarm is not None:
            await swarm.close()
        if feed is not None:
            await feed.aclose()


async def _serve() -> None:
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    serving = _Serving()
    try:
        while line := await reader.readline():
            command = json.loads(line)
            if command["cmd"] == "stop":
                await serving.close()
                answer: dict[str, Any] = {"ok": True}
            else:
                try:
                    answer = await serving.handle(command)
                except Exception as exc:  # the parent shows it; the child keeps serving
                    answer = {"error": f"{type(exc).__name__}: {exc}"}
            sys.stdout.write(json.dumps(answer) + "\n")
            sys.stdout.flush()
            if command["cmd"] == "stop":
                return
    finally:
        await serving.close()


if __name__ == "__main__":
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent ends us, with "stop" or a kill
    # No cyclic GC in a child: its full collections took 40-180 ms on the shared machine, and
    # a pause in the feed (which stamps commit times) or in the measuring clients (which stamp
    # receive times) was counted as the gateway's latency. A child lives for one scenario
    # (bounded clients and commits); what cycles it leaves are freed when it exits.
    gc.disable()
    asyncio.run(_serve())
