"""Run a gateway: two uvicorn servers on one loop, signals, the ready line, drain and exit."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import secrets
import signal
import socket
import sys
from collections.abc import Callable, Generator
from typing import Any

import uvicorn

from gamesync.app import internal_app, public_app
from gamesync.demo_feed import DemoFeed
from gamesync.errors import GameSyncError
from gamesync.gateway import Gateway
from gamesync.handshake import Doorman, GuardedHTTP, HeadTurns
from gamesync.keys import sign_token
from gamesync.settings import GatewaySettings
from gamesync.transport import GatewaySocket

__all__ = ["GatewayServer", "serve"]

log = logging.getLogger("gamesync.server")


class _Server(uvicorn.Server):
    """uvicorn.Server without its own signal handling (the gateway drains first)."""

    def __init__(self, config: uvicorn.Config) -> None:
        super().__init__(config)
        self.up = asyncio.Event()

    @contextlib.contextmanager
    def capture_signals(self) -> Generator[None, None, None]:
        yield

    async def startup(self, sockets: Any = None) -> None:
        await super().startup(sockets)
        self.up.set()


def _listen(host: str, port: int) -> socket.socket:
    """Bind a listening socket ourselves, so a busy port is one clear error, not a traceback."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        raise GameSyncError(f"cannot listen on {host}:{port}: {exc.strerror}") from exc
    return sock


def _head_refusal(gw: Gateway) -> Callable[[int], None]:
    """Count a request refused before the app saw it, by the HTTP status it got.

    Which transport it was for is not known yet; nearly every connection is a websocket.
    """

    def refused(status: int) -> None:
        if status in (414, 431):
            gw.metrics.handshake_refused("too_large", "websocket")
        elif status == 408:
            gw.metrics.handshake_refused("timeout", "websocket")
        elif status == 503:
            gw.metrics.handshake_refused("pending_full", "websocket")
        elif status == 429:
            gw.metrics.handshake_refused("penalised", "websocket")
        else:
            gw.metrics.handshake_refused("malformed", "websocket")

    return refused


def _public_http(gw: Gateway) -> type[asyncio.Protocol]:
    """The public port's HTTP protocol: heads bounded and paced, penalised addresses refused."""
    guarded = GuardedHTTP.guarded(
        close_timeout=gw.settings.close_timeout,
        head_timeout=gw.settings.handshake_timeout,
        heads=gw.registry,
        on_refused=_head_refusal(gw),
        turns=HeadTurns(),
        penalty=gw.penalty,
    )
    if gw.penalty is None or gw.penalty.header is not None:
        return guarded  # off, or the client is known only once a head parsed
    return Doorman.before(guarded, penalty=gw.penalty, on_refused=_head_refusal(gw))


def _config(app: Any, host: str, port: int, gw: Gateway, *, public: bool) -> uvicorn.Config:
    settings = gw.settings
    close_timeout = settings.close_timeout
    return uvicorn.Config(
        app,
        host=host,
        port=port,
        lifespan="off",
        # The public port's HTTP protocol bounds request heads (gamesync.handshake) and
        # serves SSE streams (gamesync.sse).
        http=_public_http(gw) if public else "auto",
        ws=(
            GatewaySocket.configured(
                close_timeout=close_timeout, on_refused=_head_refusal(gw), penalty=gw.penalty
            )
            if public
            else "none"
        ),
        ws_max_size=settings.max_frame_bytes,
        ws_per_message_deflate=False,  # 4.5x the CPU and 2x the memory in our probe
        ws_ping_interval=None,  # the gateway's sweeper pings and closes 4408 itself
        ws_ping_timeout=None,
        # uvicorn's own logging config would replace ours (JSON lines): its loggers propagate
        # to the root handler `gamesync.logs.configure_logging` installed.
        log_config=None,
        log_level="warning",
        access_log=False,
        backlog=4096,
        timeout_graceful_shutdown=max(1, int(settings.drain_seconds * 0.1)),
        server_header=False,
        proxy_headers=False,  # nothing here uses the client address
    )


def _banner(gw: Gateway, publish_token: str, public: str, internal: str) -> None:
    assert gw.signer is not None
    token = sign_token(gw.signer, "dev", ttl=24 * 3600)
    lines = [
        "",
        "=" * 78,
        "  GameSync gateway in DEV MODE: generated keys, open authorization, console page.",
        "  Never run it like this in production (pass --keys and --publish-token).",
        f"  console:        {public}/",
        f"  websocket:      {public.replace('http', 'ws', 1)}/ws?token=<token>",
        f"  token (dev):    {token}",
        f"  publish token:  {publish_token}",
        f"  publish:        curl -X POST -H 'Authorization: Bearer {publish_token}' \\",
        f"                    --data @envelope.json {internal}/v1/games/1/snapshots",
        "=" * 78,
        "",
    ]
    print("\n".join(lines), file=sys.stderr, flush=True)


class GatewayServer:
    """A gateway with its two listeners, started and stopped on the running loop."""

    def __init__(self, settings: GatewaySettings) -> None:
        self.settings = settings
        self.gateway = Gateway.create(settings)
        self.publish_token = settings.publish_token
        if self.publish_token is None and settings.dev_mode:
            self.publish_token = secrets.token_urlsafe(24)
        self.demo: DemoFeed | None = None
        self.seat_tokens: dict[str, str] = {}
        if settings.demo:
            self.demo = DemoFeed(self.gateway, game_id=1)
            signer = self.gateway.signer
            if signer is not None:
                self.seat_tokens = {
                    s: sign_token(signer, s, ttl=24 * 3600) for s in self.demo.seats
                }
        self.servers: list[_Server] = []
        self.sockets: list[socket.socket] = []
        self._tasks: list[asyncio.Task[None]] = []

    def _url(self, index: int) -> str:
        host, port = self.sockets[index].getsockname()[:2]
        return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"

    @property
    def public_url(self) -> str:
        return self._url(0)

    @property
    def internal_url(self) -> str:
        return self._url(1)

    async def start(self) -> None:
        """Start the gateway and both listeners; raise GameSyncError if one cannot bind."""
        gw, settings = self.gateway, self.settings
        internal_host = settings.effective_internal_host
        self.sockets = [_listen(settings.host, settings.port)]
        try:
            self.sockets.append(_listen(internal_host, settings.internal_port))
        except GameSyncError:
            self.sockets[0].close()
            raise
        await gw.start()
        public = public_app(
            gw,
            seat_tokens=self.seat_tokens,
            demo_game_id=self.demo.game_id if self.demo else None,
        )
        internal = internal_app(gw, self.publish_token)
        self.servers = [
            _Server(_config(public, settings.host, settings.port, gw, public=True)),
            _Server(_config(internal, internal_host, settings.internal_port, gw, public=False)),
        ]
        self._tasks = [
            asyncio.create_task(server.serve(sockets=[sock]), name="uvicorn")
            for server, sock in zip(self.servers, self.sockets, strict=True)
        ]
        started: asyncio.Future[Any] = asyncio.ensure_future(
            asyncio.gather(*(s.up.wait() for s in self.servers))
        )
        done, _ = await asyncio.wait([started, *self._tasks], return_when=asyncio.FIRST_COMPLETED)
        if started not in done:
            started.cancel()
            await self.stop()
            raise GameSyncError("a listener failed to start (port in use?)")
        if self.demo is not None:
            self.demo.start()

    async def drain_and_stop(self) -> None:
        """Drain (reconnect hints, paced closes), then stop the listeners and the gateway."""
        if self.demo is not None:
            await self.demo.stop()
        await self.gateway.drain()
        # Give closing handshakes a moment before uvicorn drops what is left.
        await self.gateway.registry.wait_empty(self.settings.drain_seconds * 0.1 + 1.0)
        await self.stop()

    async def stop(self) -> None:
        for server in self.servers:
            server.should_exit = True
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks = []
        for sock in self.sockets:
            sock.close()
        if self.demo is not None:
            await self.demo.stop()
        await self.gateway.stop()

    def force_exit(self) -> None:
        for server in self.servers:
            server.force_exit = True
            server.should_exit = True


async def serve(settings: GatewaySettings) -> int:
    """Serve until SIGTERM/SIGINT, then drain; returns the process exit code."""
    server = GatewayServer(settings)
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    signals = (signal.SIGTERM, signal.SIGINT)
    for sig in signals:
        loop.add_signal_handler(sig, stop.set)
    try:
        await server.start()
        # Full passes of the cyclic collector stop the loop for as long as they scan every live
        # object: 50-100 ms at a couple of thousand connections, all of it added to deliveries.
        # Everything built so far (modules, settings, keys, apps) lives as long as the process,
        # so it leaves the scans; and a full pass runs after 100 young-generation passes instead
        # of 10 (CPython's default), so that a storm of connections does not bring on several.
        # Cycles among young objects are still collected at the usual pace.
        gc.freeze()
        young, middle, _ = gc.get_threshold()
        gc.set_threshold(young, middle, 100)
        if settings.dev_mode and server.publish_token is not None:
            _banner(server.gateway, server.publish_token, server.public_url, server.internal_url)
        print(
            f"GAMESYNC_READY public={server.public_url} internal={server.internal_url}", flush=True
        )
        await stop.wait()
        for sig in signals:  # a second signal while draining exits at once
            loop.add_signal_handler(sig, server.force_exit)
        await server.drain_and_stop()
    finally:
        for sig in signals:
            loop.remove_signal_handler(sig)
    return 0
