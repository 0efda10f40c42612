"""Real `gamesync gateway` processes for the chaos and fuzz suites, and the machine they run on.

A gateway is started as production starts it (`python -m gamesync gateway`, its own process,
JSON logs), on port 0; its `GAMESYNC_READY public=... internal=...` line says where it listens.
Every process dies with the test process (PR_SET_PDEATHSIG) and is killed by its own PID.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

__all__ = ["GatewayLauncher", "GatewayProcess", "die_with_parent", "machine", "scrape"]

_READY = re.compile(r"GAMESYNC_READY public=http://([0-9.]+):(\d+) internal=(\S+)")


def die_with_parent() -> None:
    """In the child: SIGKILL it when the test process dies, even by SIGKILL (Linux only)."""
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG


def machine() -> dict[str, Any]:
    """What a figure was measured on: cores, load average, memory, Python."""
    with open("/proc/meminfo") as meminfo:
        total_kib = int(meminfo.readline().split()[1])
    return {
        "nproc": os.cpu_count(),
        "loadavg": [round(x, 2) for x in os.getloadavg()],
        "memory_gib": round(total_kib / 1024 / 1024, 1),
        "python": sys.version.split()[0],
        "nofile": _nofile(),
    }


def _nofile() -> int:
    import resource

    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


def scrape(text: str) -> dict[str, float]:
    """Prometheus text exposition to {'name{labels}': value} (comments skipped)."""
    values: dict[str, float] = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            name, _, value = line.rpartition(" ")
            with contextlib.suppress(ValueError):
                values[name] = float(value)
    return values


@dataclass
class GatewayProcess:
    """One gateway process: where it listens, its log, its memory, and how to end it."""

    name: str
    proc: subprocess.Popen[bytes]
    log_path: Path
    out_path: Path
    host: str = ""
    port: int = 0
    internal: str = ""

    @classmethod
    def launch(cls, workdir: Path, name: str, *args: str) -> GatewayProcess:
        """Start `gamesync gateway ARGS --port 0 --internal-port 0`; `wait_ready` before use."""
        log_path, out_path = workdir / f"{name}.log", workdir / f"{name}.out"
        command = [
            sys.executable, "-m", "gamesync", "gateway",
            "--host", "127.0.0.1", "--port", "0", "--internal-port", "0",
            "--pod-name", name, *args,
        ]  # fmt: skip
        with open(log_path, "wb") as log, open(out_path, "wb") as out:
            proc = subprocess.Popen(
                command,
                stdout=out,
                stderr=log,
                env={**os.environ, "PYTHONUNBUFFERED": "1"},
                preexec_fn=die_with_parent,  # only prctl: safe between fork and exec
            )
        return cls(name, proc, log_path, out_path)

    def wait_ready(self, timeout: float = 30.0) -> GatewayProcess:
        """Block until the ready line (a deadline, polling the output file)."""
        deadline = time.monotonic() + timeout
        while True:
            match = _READY.search(self.out_path.read_text())
            if match is not None:
                self.host, self.port, self.internal = match[1], int(match[2]), match[3]
                return self
            if self.proc.poll() is not None:
                raise AssertionError(f"{self.name} exited early:\n{self.log()[-2000:]}")
            if time.monotonic() > deadline:
                raise AssertionError(f"{self.name} not ready after {timeout}s:\n{self.log()}")
            time.sleep(0.02)

    @property
    def public(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def alive(self) -> bool:
        return self.proc.poll() is None

    def cpu_seconds(self) -> float:
        """User and system CPU time the process has used (0 once it is gone)."""
        try:
            with open(f"/proc/{self.proc.pid}/stat") as stat:
                fields = stat.read().rpartition(")")[2].split()
            return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
        except OSError:
            return 0.0

    def rss(self) -> int:
        """Resident set size in bytes (0 once the process is gone)."""
        try:
            with open(f"/proc/{self.proc.pid}/status") as status:
                for line in status:
                    if line.startswith("VmRSS:"):
                        return int(line.split()[1]) * 1024
        except OSError:
            pass
        return 0

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def log_records(self) -> list[dict[str, Any]]:
        """The JSON log lines; a run of lines that are not JSON (a raw traceback, a library's
        own format) is kept as one record, `{"raw": text}`."""
        import json

        records: list[dict[str, Any]] = []
        raw: list[str] = []
        for line in [*self.log().splitlines(), None]:
            record = None
            if line is not None:
                try:
                    record = json.loads(line)
                except ValueError:
                    raw.append(line)
                    continue
            if raw:
                records.append({"raw": "\n".join(raw)})
                raw = []
            if record is not None:
                records.append(record if isinstance(record, dict) else {"raw": line})
        return records

    def tracebacks(self, *, known: tuple[str, ...] = ()) -> list[str]:
        """Log records with a traceback or at error level, as text (those containing one of
        `known` left out)."""
        bad = []
        for record in self.log_records():
            raw = record.get("raw", "")
            if (
                "exception" in record
                or record.get("level") in ("error", "critical")
                or "Traceback" in raw
                or any(line.startswith(("ERROR", "CRITICAL")) for line in raw.splitlines())
            ):
                text = str(record)
                if not any(k in text for k in known):
                    bad.append(text[:2000])
        return bad

    def ended_connections(self) -> int:
        """How many `connection_end` records the log holds (one per finished session)."""
        return self.log().count('"connection_end"')

    def wait_ended(self, count: int, timeout: float = 5.0) -> None:
        """Block until the log holds `count` finished sessions (a deadline, polling)."""
        deadline = time.monotonic() + timeout
        while self.ended_connections() < count:
            if time.monotonic() > deadline:
                raise AssertionError(f"{self.name}: fewer than {count} sessions ended")
            time.sleep(0.01)

    def foreign_lines(self) -> list[str]:
        """Log lines that are not JSON (production logs are JSON lines only)."""
        return [line for r in self.log_records() for line in r.get("raw", "").splitlines()]

    async def readyz(self, client: httpx.AsyncClient) -> bool:
        response = await client.get(f"{self.public}/readyz", timeout=2.0)
        return response.status_code == 200

    async def metrics(self, client: httpx.AsyncClient) -> dict[str, float]:
        response = await client.get(f"{self.internal}/metrics", timeout=5.0)
        response.raise_for_status()
        return scrape(response.text)

    def terminate(self) -> None:
        """SIGTERM: the gateway drains, then exits."""
        self.proc.send_signal(signal.SIGTERM)

    def kill(self) -> None:
        """SIGKILL, as a crash or an OOM kill: no drain, no goodbye."""
        if self.alive:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(10)

    def stop(self) -> None:
        self.kill()


#: The `launch_gateways` fixture: (count, *args) -> that many ready gateways.
GatewayLauncher = Callable[..., list[GatewayProcess]]
