"""The test rig of one benchmark: the processes it started, and the operations on them.

A :class:`Rig` starts servers (GameSync gateways, the raw broadcast server, the bare-subscriber
floor, the socket.io peer, the polling server, redis-server) pinned to the server CPU, load
clients and publishers pinned to the load CPUs, and stops every one of them by pid when it
closes.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import math
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import numpy as np

from gamesync.bench.procs import (
    BenchError,
    Proc,
    free_port,
    gamesync_command,
    load_cpus,
    python_module,
    server_cpus,
)
from gamesync.bench.resp import RespClient
from gamesync.bench.tokens import Credentials

__all__ = ["UNPACED", "ClientGroup", "Rig", "Server", "admission_limits"]

READY = "GAMESYNC_READY"
# One load process holds at most this many sockets: the fd hard limit here is 20000.
PER_CLIENT_PROCESS = 9000
#: Gateway flags of every bench gateway unless a scenario asks for pacing: the gateway's
#: admission pacing (500/s after a burst of 500, DESIGN §2) protects a pod in production, but in
#: a bench it sends part of the load's connect ramp away with 1013 (the load client does not come
#: back: `peer` on a quiet machine ran with 974 of its 5,000 clients never subscribed), and the
#: figures would be the pacing's, not the gateway's.
UNPACED = ["--admission-rate", "1000000", "--admission-burst", "1000000"]
#: A busy loop at idle priority (SCHED_IDLE: it runs only when nothing else wants the CPU),
#: bounded: it stops after an hour or once the bench that started it is gone.
KEEP_AWAKE = (
    "import os, time\n"
    "os.sched_setscheduler(0, os.SCHED_IDLE, os.sched_param(0))\n"
    "parent, end = os.getppid(), time.monotonic() + 3600\n"
    "while time.monotonic() < end and os.getppid() == parent:\n"
    "    pass\n"
)


@dataclass
class Server:
    """A server under test: its process, public port, and internal (publish) port if any."""

    kind: str
    proc: Proc
    port: int
    internal_port: int | None = None
    rss_series: list[tuple[float, int]] = field(default_factory=list)


async def admission_limits(server: Server) -> dict[str, float]:
    """A gateway's configured limits (`gamesync_limit{limit}` on its internal port)."""
    url = f"http://127.0.0.1:{server.internal_port}/metrics"
    async with httpx.AsyncClient() as client:
        text = (await client.get(url, timeout=10)).text
    limits: dict[str, float] = {}
    for line in text.splitlines():
        if line.startswith('gamesync_limit{limit="'):
            name, _, value = line.removeprefix('gamesync_limit{limit="').partition('"} ')
            limits[name] = float(value)
    return limits


class ClientGroup:
    """Load-client processes that together hold ``count`` connections."""

    def __init__(self, procs: list[Proc], samples: list[Path], count: int) -> None:
        self.procs = procs
        self.samples = samples
        self.count = count

    async def _all(self, cmd: dict[str, Any], timeout: float) -> list[dict[str, Any]]:
        return list(await asyncio.gather(*(p.call(cmd, timeout) for p in self.procs)))

    async def connect(
        self, timeout: float, on_progress: Callable[[int], None] | None = None
    ) -> dict[str, Any]:
        done = [0] * len(self.procs)

        def tracker(i: int) -> Callable[[dict[str, Any]], None]:
            def on_event(ev: dict[str, Any]) -> None:
                done[i] = int(ev.get("done", 0))
                if on_progress is not None:
                    on_progress(sum(done))

            return on_event

        replies = await asyncio.gather(
            *(
                p.call({"cmd": "connect", "timeout": timeout}, timeout + 30, tracker(i))
                for i, p in enumerate(self.procs)
            )
        )
        failures: dict[str, int] = {}
        for r in replies:
            for k, v in r["failures"].items():
                failures[k] = failures.get(k, 0) + v
        result = {
            "connected": sum(r["connected"] for r in replies),
            "failed": sum(r["failed"] for r in replies),
            "failures": failures,
            "secs": max(r["secs"] for r in replies),
        }
        if on_progress is not None:
            on_progress(result["connected"])
        return result

    async def begin(self, first: dict[int, int]) -> None:
        await self._all({"cmd": "begin", "first": first}, 30)

    async def exclude(self, conns: list[int], stop_reading: bool) -> int:
        replies = await self._all(
            {"cmd": "exclude", "conns": conns, "stop_reading": stop_reading}, 10
        )
        return sum(r["paused"] for r in replies)

    async def resume(self) -> None:
        await self._all({"cmd": "resume"}, 10)

    async def wait(self, last: dict[int, int], timeout: float) -> dict[str, Any]:
        replies = await self._all({"cmd": "wait", "last": last, "timeout": timeout}, timeout + 30)
        return {
            "converged": all(r["converged"] for r in replies),
            "last_rx": max(r["last_rx"] for r in replies),
        }

    async def report(self, last: dict[int, int]) -> tuple[dict[str, Any], np.ndarray]:
        replies = await self._all({"cmd": "report", "last": last}, 60)
        merged: dict[str, Any] = {}
        for r in replies:
            for k, v in r.items():
                if isinstance(v, bool) or k == "last_rx":
                    merged[k] = max(merged.get(k, 0), v)
                elif isinstance(v, int | float):
                    merged[k] = merged.get(k, 0) + v
                elif isinstance(v, dict):
                    d = merged.setdefault(k, {})
                    for kk, vv in v.items():
                        d[kk] = d.get(kk, 0) + vv
                elif isinstance(v, list):
                    merged.setdefault(k, []).extend(v)
        arrays = [np.fromfile(p, dtype=np.float64) for p in self.samples if p.exists()]
        samples = np.concatenate(arrays) if arrays else np.zeros(0)
        return merged, samples * 1000.0

    def cpu(self) -> float:
        return sum(p.cpu() for p in self.procs)


class Rig:
    """Starts and stops the processes of one benchmark; use as ``async with Rig(...)``."""

    def __init__(self, workdir: Path, credentials: Credentials | None = None) -> None:
        self.workdir = workdir
        self.logs = workdir / "logs"
        self.credentials = credentials
        self.procs: list[Proc] = []

    async def __aenter__(self) -> Rig:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def close(self) -> None:
        while self.procs:
            proc = self.procs.pop()
            if proc.name.startswith(("client", "publisher")) and proc.proc.returncode is None:
                with contextlib.suppress(BenchError, OSError, ConnectionError):
                    await proc.call({"cmd": "quit"}, 3)
            await proc.stop()

    async def stop(self, proc: Proc) -> None:
        if proc in self.procs:
            self.procs.remove(proc)
        await proc.stop()

    _names = itertools.count(1)  # shared by every rig of a run: log names never collide

    def _name(self, base: str) -> str:
        return f"{base}-{next(Rig._names)}"

    async def _start(self, base: str, cmd: list[str], cpus: str | None) -> Proc:
        proc = await Proc.start(self._name(base), cmd, cpus=cpus, log_dir=self.logs)
        self.procs.append(proc)
        return proc

    async def keep_awake(self) -> Proc | None:
        """Keep the servers' CPU from idling between their wake-ups, or None when unpinned.

        A diagnostic: on a VM an idle CPU halts, and a server woken on it finds its caches
        cold, so a server woken less often pays more per wake-up (`affinity --keep-awake`).
        """
        cpus = server_cpus()
        if cpus is None:
            return None
        return await self._start("keep-awake", [sys.executable, "-c", KEEP_AWAKE], cpus)

    # -- servers ---------------------------------------------------------------------------
    async def redis(self) -> tuple[int, Proc]:
        port = free_port()
        proc = await self._start(
            "redis",
            [
                "redis-server",
                "--port",
                str(port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
                "--protected-mode",
                "yes",
                "--maxclients",
                "10000",
                "--dir",
                str(self.workdir),
            ],
            load_cpus(),
        )
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                client = await RespClient.connect("127.0.0.1", port, 1)
                pong = await client.command("PING")
                await client.close()
                if pong == "PONG":
                    return port, proc
            except OSError:
                await asyncio.sleep(0.05)
        raise BenchError("redis-server did not answer PING within 10 s")

    async def gateway(
        self, broker: str | None = None, extra: list[str] | None = None, *, paced: bool = False
    ) -> Server:
        """A GameSync gateway on free ports, admission pacing lifted (UNPACED) unless ``paced``."""
        if self.credentials is None:
            raise BenchError("the gateway needs credentials")
        port, internal = free_port(), free_port()
        cmd = [
            *gamesync_command(),
            "gateway",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--internal-port",
            str(internal),
            "--keys",
            str(self.credentials.jwks_path),
            # "=" form: a urlsafe token may start with "-", which argparse takes for an option
            f"--publish-token={self.credentials.publish_token}",
            "--authz",
            "open",
        ]
        if broker:
            cmd += ["--broker", broker]
        if not paced:
            cmd += UNPACED
        proc = await self._start("gateway", cmd + (extra or []), server_cpus())
        await proc.wait_line(READY, 30)
        return Server("gamesync", proc, port, internal)

    async def raw(self, size: int) -> Server:
        port = free_port()
        proc = await self._start(
            "raw", python_module("gamesync.bench.rawserver", str(port), str(size)), server_cpus()
        )
        await proc.wait_line(READY, 30)
        return Server("raw", proc, port)

    async def floor(self, size: int, redis_port: int | None = None) -> Server:
        """The bare-subscriber floor (``gamesync.bench.floorserver``), on Redis when given."""
        port = free_port()
        args = [str(port), str(size)] + ([str(redis_port)] if redis_port else [])
        proc = await self._start(
            "floor", python_module("gamesync.bench.floorserver", *args), server_cpus()
        )
        await proc.wait_line(READY, 30)
        return Server("floor", proc, port)

    async def peer(self, redis_url: str) -> Server:
        port = free_port()
        proc = await self._start(
            "socketio", python_module("gamesync.bench.peer", str(port), redis_url), server_cpus()
        )
        await proc.wait_line(READY, 30)
        return Server("socketio", proc, port)

    async def pollserver(self) -> Server:
        port = free_port()
        proc = await self._start(
            "pollserver", python_module("gamesync.bench.pollserver", str(port)), server_cpus()
        )
        await proc.wait_line(READY, 30)
        return Server("poll", proc, port)

    # -- load ------------------------------------------------------------------------------
    async def clients(
        self,
        kind: str,
        servers: list[Server],
        count: int,
        games: int,
        *,
        multi: dict[int, list[int]] | None = None,
        poll_interval: float = 3.0,
        offset: int = 0,
        placement: str = "spread",
        concurrency: int = 200,
        fleet: int = 0,
        only: int | None = None,
    ) -> ClientGroup:
        nproc = max(1, math.ceil(count / PER_CLIENT_PROCESS))
        per = math.ceil(count / nproc)
        procs, samples = [], []
        for i in range(nproc):
            n = min(per, count - i * per)
            if n <= 0:
                break
            name = self._name("client")
            sample_path = self.workdir / f"{name}.samples"
            config = {
                "kind": kind,
                "targets": [("127.0.0.1", s.port) for s in servers],
                "count": n,
                "offset": offset + i * per,
                "games": games,
                "multi": {str(k): v for k, v in (multi or {}).items()},
                "tokens_file": str(self.credentials.tokens_path) if self.credentials else None,
                "poll_interval": poll_interval,
                "placement": placement,
                "concurrency": concurrency,
                "fleet": fleet,
                "only": only,
                "samples_path": str(sample_path),
            }
            proc = await Proc.start(
                name,
                python_module("gamesync.bench.loadclient", json.dumps(config)),
                cpus=load_cpus(),
                log_dir=self.logs,
            )
            self.procs.append(proc)
            await proc.wait_line('{"event": "ready"}', 30)
            procs.append(proc)
            samples.append(sample_path)
        return ClientGroup(procs, samples, count)

    async def publisher(self, targets: list[dict[str, Any]], games: int, size: int) -> Proc:
        config = {"targets": targets, "games": games, "size": size}
        proc = await self._start(
            "publisher", python_module("gamesync.bench.publisher", json.dumps(config)), load_cpus()
        )
        await proc.wait_line('{"event": "ready"}', 30)
        return proc

    def http_target(self, server: Server) -> dict[str, Any]:
        if self.credentials is None or server.internal_port is None:
            raise BenchError(f"{server.kind} has no publish endpoint")
        return {
            "kind": "http",
            "host": "127.0.0.1",
            "port": server.internal_port,
            "token": self.credentials.publish_token,
        }
