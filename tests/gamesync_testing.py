"""Test-side helpers shared by every suite: signing keys and in-process gateways.

`tests/` is on pytest's `pythonpath`, so suites import this as `gamesync_testing`; the fixtures
built on it live in `tests/conftest.py` and reach every folder below.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import uvicorn

from gamesync.keys import KeySet, generate_key, sign_token
from gamesync.server import GatewayServer
from gamesync.settings import load_settings

PUBLISH_TOKEN = "test-publish-token"

GatewayFactory = Callable[..., Awaitable[GatewayServer]]


@dataclass
class Keys:
    """A signing key pair written as a JWKS file, and a way to mint tokens."""

    jwks_path: Path
    signer: dict[str, Any]
    private: dict[str, Any]

    @classmethod
    def generate(cls, directory: Path, kid: str = "test-1") -> Keys:
        private, public = generate_key("ES256", kid=kid)
        jwks_path = directory / "jwks.json"
        jwks_path.write_text(json.dumps({"keys": [public]}))
        return cls(jwks_path, {"keys": [private], "active": kid}, private)

    def token(self, sub: str = "7", *, ttl: int = 3600, **claims: Any) -> str:
        return sign_token(self.signer, sub, ttl=ttl, **claims)

    def verify_sub(self, token: str) -> str:
        """The user a token of ours speaks for (what a backend's own auth would do)."""
        keyset = KeySet.from_jwks(json.loads(self.jwks_path.read_text()))
        return keyset.verify(token).user_id


class Gateways:
    """Starts in-process gateways (real uvicorn on 127.0.0.1:0) with test-friendly defaults."""

    def __init__(self, keys: Keys) -> None:
        self.keys = keys
        self.running: list[GatewayServer] = []

    async def start(self, **overrides: Any) -> GatewayServer:
        options: dict[str, Any] = {
            "host": "127.0.0.1",
            "port": 0,
            "internal_port": 0,
            "keys": self.keys.jwks_path,
            "publish_token": PUBLISH_TOKEN,
            "authz": "open",
            "unsubscribe_linger_seconds": 0.05,
            "key_reload_seconds": 0.05,
            "drain_seconds": 0.2,
        }
        options.update(overrides)
        server = GatewayServer(load_settings(**options))
        await server.start()
        self.running.append(server)
        return server

    async def stop_all(self) -> None:
        for server in self.running:
            await server.stop()
        self.running.clear()


@contextlib.asynccontextmanager
async def serve_app(app: Any) -> AsyncIterator[str]:
    """Serve an ASGI app with uvicorn on 127.0.0.1 (a free port); yield its base URL."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    server = uvicorn.Server(uvicorn.Config(app, lifespan="off", log_level="warning"))
    task = asyncio.create_task(server.serve(sockets=[sock]))
    async with asyncio.timeout(5):
        while not server.started:  # uvicorn exposes a flag, not an event
            await asyncio.sleep(0.01)
    try:
        yield f"http://127.0.0.1:{sock.getsockname()[1]}"
    finally:
        server.should_exit = True
        await task
        sock.close()
