"""Process orchestration for the benchmarks: spawn, pin, wait for ready, measure, stop.

Every server and load process is a child of the bench command, pinned with ``taskset`` when
the machine has two or more cores (servers on CPU 0, load on the others), started with its
open-file soft limit raised to the hard limit, and stopped by its own pid. CPU time comes from
``/proc/PID/stat`` and memory from ``/proc/PID/status`` (VmRSS), summed over the process tree.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import resource
import shutil
import socket
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import IO, Any

__all__ = [
    "CPU_CLOCK_S",
    "BenchError",
    "Proc",
    "free_port",
    "gamesync_command",
    "load_cpus",
    "server_cpus",
]

_TICK = os.sysconf("SC_CLK_TCK")

#: The resolution of `cpu_seconds` (the kernel counts CPU time in clock ticks).
CPU_CLOCK_S = 1 / _TICK

#: Pin servers to CPU 0 and load to the other CPUs (``gamesync bench --no-pin`` turns it off).
PINNING = {"enabled": True}


class BenchError(RuntimeError):
    """A benchmark could not run (a process failed to start, a deadline passed)."""


def free_port() -> int:
    """A loopback port that was free a moment ago."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _cpu_count() -> int:
    return len(os.sched_getaffinity(0))


def server_cpus() -> str | None:
    """The CPU list for servers under test (``0``), or None when there is nothing to split."""
    if not PINNING["enabled"]:
        return None
    return "0" if _cpu_count() >= 2 and shutil.which("taskset") else None


def load_cpus() -> str | None:
    """The CPU list for load generation, Redis and publishers (all but CPU 0)."""
    n = _cpu_count()
    if not PINNING["enabled"]:
        return None
    return f"1-{n - 1}" if n >= 2 and shutil.which("taskset") else None


#: A source root to run the gateway from instead of the installed package (``--gateway-src``).
GATEWAY_SOURCE: dict[str, str | None] = {"path": None}


def gamesync_command() -> list[str]:
    """How to run the ``gamesync`` console script of this interpreter's environment."""
    src = GATEWAY_SOURCE["path"]
    if src:
        # The source root goes first on sys.path, ahead of the (editable) installed package.
        code = (
            f"import sys; sys.path.insert(0, {src!r}); "
            "from gamesync.cli import main; sys.exit(main())"
        )
        return [sys.executable, "-c", code]
    script = Path(sys.executable).with_name("gamesync")
    if script.exists():
        return [str(script)]
    found = shutil.which("gamesync")
    if found:
        return [found]
    return [sys.executable, "-c", "import sys; from gamesync.cli import main; sys.exit(main())"]


def python_module(module: str, *args: str) -> list[str]:
    return [sys.executable, "-m", module, *args]


def _raise_nofile() -> None:
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    with contextlib.suppress(ValueError, OSError):
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


def _children() -> dict[int, list[int]]:
    tree: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
        except OSError:
            continue
        ppid = int(stat[stat.rindex(")") + 2 :].split()[1])
        tree.setdefault(ppid, []).append(int(entry))
    return tree


def tree_pids(pid: int) -> list[int]:
    """``pid`` and all its descendants."""
    tree = _children()
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        out.append(p)
        todo.extend(tree.get(p, []))
    return out


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of ``pid`` and its live descendants."""
    total = 0
    for p in tree_pids(pid):
        try:
            stat = Path(f"/proc/{p}/stat").read_text()
        except OSError:
            continue
        fields = stat[stat.rindex(")") + 2 :].split()
        total += int(fields[11]) + int(fields[12])
    return total / _TICK


def rss_bytes(pid: int) -> int:
    """Resident set size (VmRSS) of ``pid`` and its live descendants."""
    total = 0
    for p in tree_pids(pid):
        try:
            for line in Path(f"/proc/{p}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1]) * 1024
        except OSError:
            continue
    return total


class Proc:
    """A child process with a line-oriented stdout and stderr going to a log file."""

    def __init__(self, name: str, proc: asyncio.subprocess.Process, log: IO[bytes]) -> None:
        self.name = name
        self.proc = proc
        self.pid = proc.pid
        self._log = log
        self.log_path = Path(log.name)
        self.lines: asyncio.Queue[str] = asyncio.Queue()
        self._reader = asyncio.create_task(self._read())

    @classmethod
    async def start(
        cls, name: str, cmd: Sequence[str], *, cpus: str | None, log_dir: Path, stdin: bool = True
    ) -> Proc:
        argv = (["taskset", "-c", cpus] if cpus else []) + list(cmd)
        log_dir.mkdir(parents=True, exist_ok=True)  # noqa: ASYNC240 - once per process start
        log = (log_dir / f"{name}.log").open("ab")
        proc = await asyncio.create_subprocess_exec(
            *argv,
            stdin=asyncio.subprocess.PIPE if stdin else asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=log,
            preexec_fn=_raise_nofile,
            limit=1 << 24,
        )
        return cls(name, proc, log)

    async def _read(self) -> None:
        assert self.proc.stdout is not None
        while True:
            line = await self.proc.stdout.readline()
            if not line:
                return
            text = line.decode(errors="replace").rstrip("\n")
            self._log.write(b"[stdout] " + line)
            self._log.flush()
            await self.lines.put(text)

    async def wait_line(self, prefix: str, timeout: float) -> str:
        """The first stdout line that starts with ``prefix``; BenchError after ``timeout``."""
        deadline = time.monotonic() + timeout
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0 or (self.proc.returncode is not None and self.lines.empty()):
                break
            try:
                line = await asyncio.wait_for(self.lines.get(), min(remaining, 0.5))
            except TimeoutError:
                continue
            if line.startswith(prefix):
                return line
        raise BenchError(
            f"{self.name}: no {prefix!r} line within {timeout:.0f} s "
            f"(exit code {self.proc.returncode}; see {self._log.name})"
        )

    async def send(self, obj: dict[str, Any] | str) -> None:
        assert self.proc.stdin is not None
        text = obj if isinstance(obj, str) else json.dumps(obj)
        self.proc.stdin.write(text.encode() + b"\n")
        await self.proc.stdin.drain()

    async def reply(
        self, timeout: float, on_event: Callable[[dict[str, Any]], None] | None = None
    ) -> dict[str, Any]:
        """The next JSON reply line (progress events go to ``on_event``)."""
        deadline = time.monotonic() + timeout
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise BenchError(f"{self.name}: no reply within {timeout:.0f} s")
            if self.proc.returncode is not None and self.lines.empty():
                raise BenchError(
                    f"{self.name} exited with {self.proc.returncode}; see {self._log.name}"
                )
            try:
                line = await asyncio.wait_for(self.lines.get(), min(remaining, 0.5))
            except TimeoutError:
                continue
            try:
                obj = json.loads(line)
            except ValueError:
                continue
            if not isinstance(obj, dict):
                continue
            if "event" in obj:
                if on_event is not None:
                    on_event(obj)
                continue
            return obj

    async def call(
        self,
        obj: dict[str, Any] | str,
        timeout: float,
        on_event: Callable[[dict[str, Any]], None] | None = None,
    ) -> dict[str, Any]:
        await self.send(obj)
        return await self.reply(timeout, on_event)

    def cpu(self) -> float:
        return cpu_seconds(self.pid)

    def rss(self) -> int:
        return rss_bytes(self.pid)

    async def stop(self, timeout: float = 5.0) -> None:
        """SIGTERM, then SIGKILL after ``timeout``; always reaps the process."""
        if self.proc.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                self.proc.terminate()
            try:
                await asyncio.wait_for(self.proc.wait(), timeout)
            except TimeoutError:
                with contextlib.suppress(ProcessLookupError):
                    self.proc.kill()
                await self.proc.wait()
        self._reader.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._reader
        self._log.close()
