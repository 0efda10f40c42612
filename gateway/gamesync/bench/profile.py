"""Sampling a server under load with py-spy (optional) and summarising where its time went."""

from __future__ import annotations

import asyncio
import collections
import re
import shutil
import sys
from pathlib import Path
from typing import Any

from gamesync.bench.procs import load_cpus

__all__ = ["py_spy", "record", "summarize"]

_FRAME = re.compile(r"^(?P<func>.*?) \((?P<file>[^():]*)(?::(?P<line>\d+))?\)$")


def py_spy() -> str | None:
    """The py-spy executable next to this interpreter, or on PATH, or None."""
    local = Path(sys.executable).with_name("py-spy")
    return str(local) if local.exists() else shutil.which("py-spy")


async def record(pid: int, seconds: float, out: Path) -> Path | None:
    """``py-spy record --format raw`` of ``pid`` for ``seconds``, pinned to the load CPUs."""
    exe = py_spy()
    if exe is None:
        return None
    cpus = load_cpus()
    argv = (["taskset", "-c", cpus] if cpus else []) + [
        exe,
        "record",
        "-p",
        str(pid),
        "-d",
        str(max(1, int(seconds))),
        "-r",
        "200",
        "-f",
        "raw",
        "-o",
        str(out),
        "--nonblocking",
    ]
    proc = await asyncio.create_subprocess_exec(
        *argv, stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL
    )
    try:
        await asyncio.wait_for(proc.wait(), seconds + 30)
    except TimeoutError:
        proc.kill()
        await proc.wait()
    return out if _exists(out) else None


def _exists(path: Path) -> bool:
    return path.exists()


def _short(frame: str) -> str:
    m = _FRAME.match(frame.strip())
    if not m:
        return frame.strip()
    path = m.group("file")
    for marker in ("site-packages/", "python3.11/", "gateway/"):
        if marker in path:
            path = path.split(marker, 1)[1]
            break
    return f"{m.group('func')} ({path})"


def summarize(path: Path, top: int = 15) -> dict[str, Any]:
    """Self and inclusive shares of the samples in a py-spy raw (collapsed stacks) file."""
    self_time: collections.Counter[str] = collections.Counter()
    inclusive: collections.Counter[str] = collections.Counter()
    by_package: collections.Counter[str] = collections.Counter()
    total = 0
    for line in path.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack or not count.isdigit():
            continue
        n = int(count)
        frames = [_short(f) for f in stack.split(";")]
        total += n
        self_time[frames[-1]] += n
        for f in set(frames):
            inclusive[f] += n
        by_package[_package(frames[-1])] += n
    if total == 0:
        return {"samples": 0, "self": [], "inclusive": []}
    return {
        "samples": total,
        "self": [[f, round(100 * n / total, 1)] for f, n in self_time.most_common(top)],
        "inclusive": [[f, round(100 * n / total, 1)] for f, n in inclusive.most_common(top)],
        "self_by_package": [[p, round(100 * n / total, 1)] for p, n in by_package.most_common(12)],
    }


def _package(frame: str) -> str:
    """Where a leaf frame's code lives: a gamesync module, a library, or the event loop."""
    inner = frame[frame.rfind("(") + 1 : -1]
    if inner.startswith("asyncio/runners.py"):
        return "event loop + syscalls (uvloop, native)"
    if inner.startswith("gamesync/"):
        return inner.removesuffix(".py")
    return inner.split("/", 1)[0].removesuffix(".py")
