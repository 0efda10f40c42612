"""The `helm test` hook's check, run for real against stand-in gateways on loopback.

The Pod's script is taken from the rendered chart and run with this interpreter (the gateway
image ships the same Python and websockets), so what is tested is exactly what the hook runs.
"""

from __future__ import annotations

import json
import queue
import re
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from http import HTTPStatus
from pathlib import Path

from chart_rendering import only, render, scenario_values
from websockets.http11 import Request, Response
from websockets.sync.server import ServerConnection, serve

from gamesync.keys import write_key_dir

Handler = Callable[[ServerConnection], None]


def _hook_script() -> str:
    pod = only(render(scenario_values("04-kind-dev")), "Pod")
    container = pod["spec"]["containers"][0]
    assert container["command"] == ["python", "-c"]
    script: str = container["args"][0]
    return script


def _refuse_without_token(ws: ServerConnection) -> None:
    """What DESIGN §2 says a gateway does when the first message is not an auth message."""
    ws.recv(timeout=5)
    ws.send(
        json.dumps({"type": "error", "version": 1, "code": "unauthorized", "message": "no token"})
    )
    ws.close(4401, "unauthorized")


def _welcome_anyone(ws: ServerConnection) -> None:
    ws.recv(timeout=5)
    ws.send(json.dumps({"type": "welcome", "version": 1, "userId": "anonymous"}))


@contextmanager
def _gateway(handler: Handler, readyz: HTTPStatus = HTTPStatus.OK) -> Iterator[int]:
    def process_request(connection: ServerConnection, request: Request) -> Response | None:
        if request.path == "/readyz":
            return connection.respond(readyz, f"{readyz.phrase}\n")
        return None

    with serve(handler, "127.0.0.1", 0, process_request=process_request) as server:
        thread = threading.Thread(target=server.serve_forever, daemon=True)
        thread.start()
        try:
            yield server.socket.getsockname()[1]
        finally:
            server.shutdown()
            thread.join(timeout=10)


def _run_hook(port: int) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", _hook_script(), "127.0.0.1", str(port)],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )


def test_hook_passes_against_a_ready_gateway_speaking_the_protocol() -> None:
    with _gateway(_refuse_without_token) as port:
        result = _run_hook(port)
    assert result.returncode == 0, result.stderr
    assert "is ready and speaks protocol v1" in result.stdout


def test_hook_fails_when_the_gateway_is_not_ready() -> None:
    with _gateway(_refuse_without_token, readyz=HTTPStatus.SERVICE_UNAVAILABLE) as port:
        result = _run_hook(port)
    assert result.returncode != 0
    assert "/readyz answered 503" in result.stderr


def test_hook_fails_when_a_gateway_lets_a_client_in_without_a_token() -> None:
    with _gateway(_welcome_anyone) as port:
        result = _run_hook(port)
    assert result.returncode != 0
    assert "unexpected first frame" in result.stderr


def _ready_public_port(gateway: subprocess.Popen[str], timeout: float) -> int:
    """The public port from the gateway's `GAMESYNC_READY public=... internal=...` line."""
    found: queue.Queue[int] = queue.Queue()

    def read() -> None:
        assert gateway.stdout is not None
        for line in gateway.stdout:
            match = re.match(r"GAMESYNC_READY public=http://[^:]+:(\d+) ", line)
            if match:
                found.put(int(match.group(1)))

    threading.Thread(target=read, daemon=True).start()
    try:
        return found.get(timeout=timeout)
    except queue.Empty:
        raise AssertionError("the gateway never printed GAMESYNC_READY") from None


def test_hook_passes_against_the_real_gateway(tmp_path: Path) -> None:
    """The same script against `gamesync gateway` itself, as the operator runs it: with keys
    (never dev mode), here with the in-process broker."""
    jwks, _ = write_key_dir(tmp_path, "ES256")
    command = [
        sys.executable,
        "-c",
        "import sys; from gamesync.cli import main; sys.exit(main())",
        "gateway",
        "--host",
        "127.0.0.1",
        "--port",
        "0",
        "--internal-port",
        "0",
        "--drain-seconds",
        "1",
        "--keys",
        str(jwks),
    ]
    with subprocess.Popen(
        command, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True
    ) as gateway:
        try:
            result = _run_hook(_ready_public_port(gateway, timeout=30))
        finally:
            gateway.terminate()
            gateway.wait(timeout=30)
    assert result.returncode == 0, result.stderr
