"""A swarm of well-behaved clients in a process of its own, driven over stdin/stdout.

The scenarios measure the connected clients' latency while something else (a reconnect storm,
hostile clients) loads the gateway. Measured from the test's own event loop, that load would
also delay the measuring clients; in their own process they see only what the gateway does.
Loop times are `time.monotonic()`, the same clock in every process on the machine.

Commands (one JSON object a line, each answered by one line):
  {"cmd": "start", "targets": [[host, port]], "count": N, "games": [...], "signer": PATH,
   "user_offset": K, "sources": [...], "reconnect": false}      -> {"ok": true}
  {"cmd": "status", "newest": {game: version}}                  -> counts
  {"cmd": "latency", "windows": [[start, end], ...]}            -> {"p50", "p99", "n": [...]}
  {"cmd": "stop"}                                               -> {"ok": true}, then exit
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from chaos.processes import die_with_parent
from chaos.swarm import Policy, Swarm, percentile

__all__ = ["Crowd"]


class Crowd:
    """The parent's handle on a crowd process."""

    def __init__(self, proc: asyncio.subprocess.Process) -> None:
        self.proc = proc

    @classmethod
    async def spawn(cls) -> Crowd:
        tests = os.path.dirname(os.path.dirname(__file__))  # tests/, for `chaos.crowd`
        path = os.pathsep.join([tests, os.environ.get("PYTHONPATH", "")])
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "chaos.crowd",
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
            raise AssertionError(f"the crowd process ended (exit {await self.proc.wait()})")
        answer: dict[str, Any] = json.loads(line)
        if "error" in answer:
            raise AssertionError(f"crowd: {answer['error']}")
        return answer

    async def start(
        self,
        targets: Sequence[tuple[str, int]],
        count: int,
        games: Sequence[int],
        signer: Path,
        *,
        user_offset: int = 0,
        sources: Sequence[str] = ("127.0.0.1",),
        reconnect: bool = False,
    ) -> None:
        await self.call(
            120,
            cmd="start",
            targets=[list(t) for t in targets],
            count=count,
            games=list(games),
            signer=str(signer),
            user_offset=user_offset,
            sources=list(sources),
            reconnect=reconnect,
        )

    async def status(self, newest: dict[int, int] | None = None) -> dict[str, Any]:
        return await self.call(cmd="status", newest={str(k): v for k, v in (newest or {}).items()})

    async def latency(self, *windows: tuple[float, float]) -> dict[str, list[float]]:
        """p50, p99 (seconds) and n of the latencies received in each (start, end) window."""
        return await self.call(cmd="latency", windows=[list(w) for w in windows])

    async def until_current(self, newest: dict[int, int], timeout: float = 20.0) -> float:
        """Wait until every client holds `newest` of its game (a deadline); seconds taken."""
        loop = asyncio.get_running_loop()
        start = loop.time()
        while (await self.status(newest))["behind"]:
            if loop.time() - start > timeout:
                raise AssertionError(f"crowd clients still behind after {timeout}s")
            await asyncio.sleep(0.05)  # re-check period
        return loop.time() - start

    async def stop(self) -> None:
        if self.proc.returncode is None:
            try:
                await self.call(30, cmd="stop")
                await asyncio.wait_for(self.proc.wait(), 10)
            except (AssertionError, TimeoutError, BrokenPipeError, ConnectionResetError):
                self.proc.kill()
                await self.proc.wait()


# the child side ----------------------------------------------------------------------------


def _summary(swarm: Swarm, newest: dict[int, int]) -> dict[str, Any]:
    clients = swarm.clients
    return {
        "clients": len(clients),
        "subscribed": swarm.subscribed(),
        "behind": swarm.behind(newest) if newest else None,
        "closes": sum(len(c.closes) for c in clients),
        "lost": sum(c.attempts > 1 or not c.connected for c in clients),
        "close_codes": {str(k): v for k, v in swarm.close_codes.items()},
        "out_of_order": sum(c.out_of_order for c in clients),
        "errors": dict(swarm.errors),
        "violations": swarm.violations()[:20],
        #: the longest silence between two server pings any client saw (the sweeper's pulse)
        "max_ping_gap": max(
            (b - a for c in clients for a, b in zip(c.pings, c.pings[1:], strict=False)),
            default=None,
        ),
        "pings": sum(len(c.pings) for c in clients),
    }


def _tokens(command: dict[str, Any]) -> Callable[[int], str]:
    """Client i's token: user `u{user_offset + i}`, signed with the signer file given."""
    from gamesync.keys import load_signer, sign_token

    signer = load_signer(Path(command["signer"]))
    offset = int(command["user_offset"])
    return lambda i: sign_token(signer, f"u{offset + i}", ttl=3600)


async def _serve() -> None:
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    swarm: Swarm | None = None

    def answer(doc: dict[str, Any]) -> None:
        sys.stdout.write(json.dumps(doc) + "\n")
        sys.stdout.flush()

    while line := await reader.readline():
        command = json.loads(line)
        cmd = command["cmd"]
        try:
            if cmd == "start":
                swarm = Swarm(
                    [tuple(t) for t in command["targets"]],
                    policy=Policy(reconnect=bool(command["reconnect"])),
                    sources=command["sources"],
                )
                clients = swarm.add(int(command["count"]), command["games"], _tokens(command))
                await swarm.connect(clients)
                answer({"ok": True})
            elif cmd == "status":
                assert swarm is not None
                newest = {int(k): int(v) for k, v in command.get("newest", {}).items()}
                answer(_summary(swarm, newest))
            elif cmd == "latency":
                assert swarm is not None
                samples = [swarm.latencies(a, b) for a, b in command["windows"]]
                answer(
                    {
                        "p50": [percentile(s, 50) for s in samples],
                        "p99": [percentile(s, 99) for s in samples],
                        "n": [len(s) for s in samples],
                    }
                )
            elif cmd == "stop":
                if swarm is not None:
                    await swarm.close()
                answer({"ok": True})
                return
            else:
                answer({"error": f"unknown command {cmd!r}"})
        except Exception as exc:  # the parent shows it; the crowd keeps serving
            answer({"error": f"{type(exc).__name__}: {exc}"})


if __name__ == "__main__":
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent ends us, with "stop" or a kill
    asyncio.run(_serve())
