"""In-band token renewal against a real gateway with signed tokens that live a few seconds.

GameSyncClient runs in Node (no browser needed, but the same node toolchain as the browser
tests). The gateway closes a live connection with 4401 when its token expires (plus leeway);
the client must renew before that on the same socket.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from browser_harness import REPO, GatewayProcess, missing_tools

pytestmark = pytest.mark.browser

SCRIPT = Path(__file__).with_name("renewal.mjs")
GAMESYNC = Path(sys.executable).with_name("gamesync")
PUBLISH_TOKEN = "renewal-test-publish-token"
TTL_SECONDS = 3
LEEWAY_SECONDS = 5  # the gateway's default clock-skew leeway


@pytest.fixture
def signed_gateway(tmp_path: Path) -> Iterator[tuple[GatewayProcess, Path]]:
    missing = missing_tools()
    if missing is not None:
        pytest.skip(missing)
    subprocess.run(
        [str(GAMESYNC), "keys", "generate", "--alg", "ES256", "--dir", str(tmp_path)],
        check=True,
        capture_output=True,
    )
    process = GatewayProcess(
        extra_args=(
            "--keys",
            str(tmp_path / "jwks.json"),
            "--authz",
            "open",
            "--publish-token",
            PUBLISH_TOKEN,
        )
    )
    process.start()
    envelope = {"gameId": 5, "version": 1, "snapshot": {"hello": "renewal"}}
    assert process.publish(envelope, PUBLISH_TOKEN) == {"published": True}
    try:
        yield process, tmp_path / "signer.json"
    finally:
        process.stop(signal.SIGTERM)


def run_client(process: GatewayProcess, signer: Path, mode: str, run_ms: int) -> dict[str, Any]:
    ws_url = f"ws://127.0.0.1:{process.port}/ws"
    args = [str(GAMESYNC), str(signer), str(TTL_SECONDS), str(run_ms), mode]
    result = subprocess.run(
        ["node", str(SCRIPT), ws_url, *args],
        capture_output=True,
        text=True,
        timeout=run_ms / 1000 + 30,
        cwd=REPO,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    summary: dict[str, Any] = json.loads(result.stdout)
    return summary


def test_a_fixed_token_is_closed_with_4401_when_it_expires(
    signed_gateway: tuple[GatewayProcess, Path],
) -> None:
    """The control: without renewal the gateway really does end the connection."""
    process, signer = signed_gateway
    summary = run_client(process, signer, "fixed", (TTL_SECONDS + LEEWAY_SECONDS + 10) * 1000)
    assert summary["snapshots"] == [1]
    assert summary["closes"][-1]["code"] == 4401
    assert summary["finalStatus"] == "disconnected"
    assert summary["finalError"] == {"code": "token_expired", "closeCode": 4401}


def test_the_client_renews_in_band_and_keeps_its_socket_past_expiry(
    signed_gateway: tuple[GatewayProcess, Path],
) -> None:
    process, signer = signed_gateway
    summary = run_client(process, signer, "renew", (TTL_SECONDS + LEEWAY_SECONDS + 3) * 1000)
    assert summary["closes"] == [], "the socket was never closed"
    assert summary["statuses"] == ["connecting", "connected"]
    assert summary["reasons"][0] == "connect"
    assert summary["reasons"].count("renew") >= 3
    # Each renewal was acknowledged with a welcome carrying a later expiry.
    assert len(summary["welcomes"]) >= 4
    assert summary["welcomes"] == sorted(summary["welcomes"])
    assert summary["welcomes"][-1] > summary["welcomes"][0]
    assert summary["snapshots"] == [1]
    assert summary["finalStatus"] == "connected"
