"""The browser tests' parts: a real dev-mode gateway process and a real Chromium.

The gateway runs as `gamesync gateway --demo` on free loopback ports; the browser is
Debian's /usr/bin/chromium driven by playwright-core through `driver.mjs` (one JSON command
per line). Every wait has a deadline; nothing sleeps to synchronise.
"""

from __future__ import annotations

import contextlib
import json
import os
import queue
import re
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path
from typing import IO, Any

import pytest

REPO = Path(__file__).resolve().parents[2]
DRIVER = Path(__file__).with_name("driver.mjs")
PLAYWRIGHT = REPO / "clients" / "js" / "node_modules" / "playwright-core"
CHROMIUM = Path("/usr/bin/chromium")
OUTPUT = REPO / "test-output" / "browser"
READY_PREFIX = "GAMESYNC_READY "
EXAMPLE = REPO / "examples" / "react"
VITE = EXAMPLE / "node_modules" / "vite" / "bin" / "vite.js"


def missing_tools() -> str | None:
    if shutil.which("node") is None:
        return "node is not installed"
    if not CHROMIUM.exists():
        return f"{CHROMIUM} is not installed (apt-get install chromium)"
    if not PLAYWRIGHT.exists():
        return "playwright-core is not installed (npm ci in clients/js)"
    return None


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


class _LineReader:
    """Reads a pipe on a thread so that the test can wait for lines with a deadline."""

    def __init__(self, stream: IO[str], name: str) -> None:
        self.lines: queue.Queue[str | None] = queue.Queue()
        self.history: list[str] = []
        self._thread = threading.Thread(target=self._pump, args=(stream,), name=name, daemon=True)
        self._thread.start()

    def _pump(self, stream: IO[str]) -> None:
        for line in stream:
            self.history.append(line.rstrip("\n"))
            self.lines.put(line.rstrip("\n"))
        self.lines.put(None)

    def wait_for(self, pattern: str, start: int, deadline: float) -> tuple[int, str]:
        """The first line at index >= start that matches `pattern`, with its index."""
        regex = re.compile(pattern)
        index = start
        ended = False
        while True:
            # Lines reach `history` before the queue, so a scan after each queued line (or the
            # end marker) has seen everything read so far.
            while index < len(self.history):
                if regex.search(self.history[index]):
                    return index, self.history[index]
                index += 1
            if ended:
                raise EOFError(f"the stream ended before a line matching {pattern!r}")
            ended = self.next_line(deadline) is None

    def next_line(self, deadline: float) -> str | None:
        """The next line, None at end of stream; raises TimeoutError past the deadline."""
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise TimeoutError
        try:
            return self.lines.get(timeout=remaining)
        except queue.Empty:
            raise TimeoutError from None


class GatewayProcess:
    """`gamesync gateway` (by default `--demo`) on fixed loopback ports, restartable on them."""

    def __init__(self, extra_args: tuple[str, ...] = ("--demo",)) -> None:
        self.extra_args = extra_args
        self.port = free_port()
        self.internal_port = free_port()
        self.public_url = f"http://127.0.0.1:{self.port}"
        self.internal_url = f"http://127.0.0.1:{self.internal_port}"
        self._process: subprocess.Popen[str] | None = None
        self._reader: _LineReader | None = None
        self.output: list[str] = []

    def start(self, timeout: float = 30.0) -> None:
        executable = Path(sys.executable).with_name("gamesync")
        command = [
            str(executable),
            "gateway",
            "--host",
            "127.0.0.1",
            "--port",
            str(self.port),
            "--internal-port",
            str(self.internal_port),
            "--drain-seconds",
            "1",
            *self.extra_args,
        ]
        process = subprocess.Popen(
            command,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            text=True,
            cwd=REPO,
        )
        self._process = process
        assert process.stdout is not None
        self._reader = _LineReader(process.stdout, "gateway output")
        deadline = time.monotonic() + timeout
        while True:
            try:
                line = self._reader.next_line(deadline)
            except TimeoutError:
                self.stop(signal.SIGKILL)
                pytest.fail(f"gateway not ready in {timeout}s:\n{self.log()}")
            if line is None:
                process.wait()
                pytest.fail(f"gateway exited with {process.returncode}:\n{self.log()}")
            if line.startswith(READY_PREFIX):
                expected = f"public={self.public_url} internal={self.internal_url}"
                assert line[len(READY_PREFIX) :] == expected
                return

    def stop(self, sig: signal.Signals = signal.SIGTERM, timeout: float = 20.0) -> None:
        process = self._process
        if process is None:
            return
        self._process = None
        if process.poll() is None:
            process.send_signal(sig)
            try:
                process.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=5)
        if self._reader is not None:
            self.output.extend(self._reader.history)
            self._reader = None

    def log(self) -> str:
        lines = self.output + (self._reader.history if self._reader else [])
        return "\n".join(lines[-80:])

    def publish(self, envelope: dict[str, Any], publish_token: str) -> dict[str, Any]:
        """POST an envelope to the internal publish endpoint (DESIGN §3)."""
        request = urllib.request.Request(
            f"{self.internal_url}/v1/games/{envelope['gameId']}/snapshots",
            data=json.dumps(envelope).encode(),
            headers={
                "Authorization": f"Bearer {publish_token}",
                "Content-Type": "application/json",
            },
            method="POST",
        )
        with urllib.request.urlopen(request, timeout=5) as response:
            body: dict[str, Any] = json.load(response)
            return body

    def stats(self) -> dict[str, Any]:
        with urllib.request.urlopen(f"{self.internal_url}/v1/stats", timeout=5) as response:
            body: dict[str, Any] = json.load(response)
            return body

    def metrics_text(self) -> str:
        """The internal port's /metrics, in Prometheus' text format."""
        with urllib.request.urlopen(f"{self.internal_url}/metrics", timeout=5) as response:
            text: str = response.read().decode()
            return text

    def wait_for_stats(self, predicate: Any, timeout: float = 10.0) -> dict[str, Any]:
        """Poll /v1/stats until predicate(stats) holds; fail with the last stats at the deadline."""
        deadline = time.monotonic() + timeout
        stats = self.stats()
        while not predicate(stats):
            if time.monotonic() > deadline:
                pytest.fail(f"gateway stats never matched: {stats}")
            # A short pause between probes of the server's state (not a synchronising sleep:
            # the loop ends on the condition or the deadline).
            time.sleep(0.05)
            stats = self.stats()
        return stats


_DESCRIBE_CONSOLE = """() => {
  const text = (id) => document.getElementById(id)?.textContent ?? null;
  const items = (selector) => [...document.querySelectorAll(selector)].map((li) => li.textContent);
  return {
    url: location.href,
    status: text('status'),
    reason: text('status-reason'),
    version: text('version'),
    log: items('#log li').slice(0, 15),
    transitions: items('#transitions li').slice(-15),
  };
}"""


class ExampleApp:
    """examples/react's production build under `vite preview`, with its Nommie stand-in.

    The stand-in routes (/api/...) talk to the gateway at `gateway_url`; each request they
    answer is one `stand-in: ...` line of output, which tests wait on with `wait_for_output`.
    """

    def __init__(self, gateway_url: str) -> None:
        self.gateway_url = gateway_url
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self._process: subprocess.Popen[str] | None = None
        self._reader: _LineReader | None = None

    def start(self, timeout: float = 30.0) -> None:
        process = subprocess.Popen(
            [
                "node",
                str(VITE),
                "preview",
                "--host",
                "127.0.0.1",
                "--port",
                str(self.port),
                "--strictPort",
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            text=True,
            cwd=EXAMPLE,
            env={**os.environ, "GAMESYNC_GATEWAY_URL": self.gateway_url, "NO_COLOR": "1"},
        )
        self._process = process
        assert process.stdout is not None
        self._reader = _LineReader(process.stdout, "vite preview output")
        try:
            self._reader.wait_for(re.escape(self.url), 0, time.monotonic() + timeout)
        except (TimeoutError, EOFError):
            self.stop()
            pytest.fail(f"vite preview did not start in {timeout}s:\n{self.log()}")

    @property
    def output_mark(self) -> int:
        """The index of the next output line, for `wait_for_output(start=...)`."""
        return len(self._reader.history) if self._reader else 0

    def wait_for_output(self, pattern: str, start: int = 0, timeout: float = 10.0) -> str:
        """The first output line from index `start` on that matches `pattern` (a regex)."""
        assert self._reader is not None
        try:
            return self._reader.wait_for(pattern, start, time.monotonic() + timeout)[1]
        except (TimeoutError, EOFError):
            pytest.fail(f"no output line matched {pattern!r} in {timeout}s:\n{self.log()}")

    def stop(self) -> None:
        process, self._process = self._process, None
        if process is not None and process.poll() is None:
            process.terminate()
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=5)

    def log(self) -> str:
        return "\n".join(self._reader.history[-60:]) if self._reader else ""


class BrowserError(AssertionError):
    """A command failed in the browser (a wait ran out, a page threw)."""


class Browser:
    """Chromium through driver.mjs; every page runs in its own fresh context."""

    def __init__(self, log_path: Path) -> None:
        self._log = log_path.open("w")
        self._process = subprocess.Popen(
            ["node", str(DRIVER)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self._log,
            text=True,
            cwd=REPO,
        )
        assert self._process.stdout is not None
        self._reader = _LineReader(self._process.stdout, "browser driver")
        self._next_id = 0
        hello = self._read(time.monotonic() + 30)
        if not hello.get("ready"):
            raise BrowserError(f"driver did not start: {hello}")
        self.version = str(hello["version"])

    def _read(self, deadline: float) -> dict[str, Any]:
        try:
            line = self._reader.next_line(deadline)
        except TimeoutError:
            raise BrowserError("the browser driver did not answer in time") from None
        if line is None:
            raise BrowserError(f"the browser driver exited; see {self._log.name}")
        reply: dict[str, Any] = json.loads(line)
        return reply

    def call(self, cmd: str, *, timeout: float = 30.0, **fields: Any) -> Any:
        self._next_id += 1
        command = {"id": self._next_id, "cmd": cmd, **fields}
        assert self._process.stdin is not None
        self._process.stdin.write(json.dumps(command) + "\n")
        self._process.stdin.flush()
        reply = self._read(time.monotonic() + timeout)
        if reply.get("id") != self._next_id:
            raise BrowserError(f"out-of-order reply {reply} to {command}")
        if not reply["ok"]:
            raise BrowserError(f"{cmd} failed: {reply['error']}")
        return reply["result"]

    def open(self, page: str, url: str, *, block_websockets: bool = False) -> None:
        """Open `url` in a fresh context; `block_websockets`: every websocket fails at once."""
        self.call("open", page=page, url=url, blockWebSockets=block_websockets)

    def evaluate(self, page: str, fn: str, arg: Any = None) -> Any:
        return self.call("eval", page=page, fn=fn, arg=arg)

    def wait_for(self, page: str, fn: str, arg: Any = None, timeout: float = 10.0) -> Any:
        """Run fn(arg) in the page until it returns something truthy, and return that."""
        try:
            return self.call(
                "waitFor",
                page=page,
                fn=fn,
                arg=arg,
                timeoutMs=int(timeout * 1000),
                timeout=timeout + 10,
            )
        except BrowserError as exc:
            raise BrowserError(f"{exc}\nwhile waiting for {fn}\n{self.describe(page)}") from None

    def describe(self, page: str) -> str:
        """What the console shows: status, reason, version and the newest log lines."""
        try:
            state = self.evaluate(page, _DESCRIBE_CONSOLE)
        except BrowserError as exc:
            return f"(could not read the page: {exc})"
        return json.dumps(state, indent=2)

    def screenshot(self, page: str, name: str) -> Path:
        OUTPUT.mkdir(parents=True, exist_ok=True)
        path = OUTPUT / f"{name}.png"
        self.call("screenshot", page=page, path=str(path))
        return path

    def close_page(self, page: str) -> None:
        self.call("close", page=page)

    def quit(self) -> None:
        with contextlib.suppress(BrowserError, BrokenPipeError, OSError):
            self.call("quit", timeout=10)
        try:
            self._process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self._process.kill()
            self._process.wait(timeout=5)
        self._log.close()
