"""Last words before a close survive a backlog.

`Session.close` (and `Gateway.drain`) send the `reconnect` hint or the `error` frame through the
connection's conflating writer, then the close frame straight to the transport. When the socket
has a backlog (it was unwritable for a moment), the hint or error was parked behind it and never
written; the client saw 1012 without `retryAfterMs` (or 4401/4403 without the reason).
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from typing import Any

from gamesync.framing import Framing, text_frame
from gamesync.gateway import Gateway
from gamesync.session import WebSocketSession
from gamesync.settings import load_settings

CLOSE = b"<close frame>"


class StandInSocket:
    """A GatewaySocket stand-in: frames go to a list, like bytes into the transport buffer."""

    framing = Framing.WEBSOCKET

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self.last_seen = loop.time()
        self.unwritable_since: float | None = None
        self.on_writable: Callable[[], None] | None = None
        self.closing = False
        self.frames: list[bytes] = []

    @property
    def is_open(self) -> bool:
        return not self.closing

    @property
    def can_write(self) -> bool:
        return self.is_open and self.unwritable_since is None

    def write_frame(self, frame: bytes) -> None:
        self.frames.append(frame)

    def close_now(self, code: int, reason: str = "", *, abort_after: float | None = None) -> bool:
        self.closing = True
        self.frames.append(CLOSE)
        return True


async def never() -> dict[str, Any]:
    await asyncio.Event().wait()
    return {}


async def test_drain_hint_reaches_a_client_whose_socket_has_a_backlog() -> None:
    gateway = Gateway.create(load_settings(dev=True, drain_seconds=0.1))
    socket = StandInSocket(asyncio.get_running_loop())
    session = WebSocketSession(gateway.services, socket, {"type": "websocket"}, never)  # type: ignore[arg-type]
    gateway.registry.attach(session)
    session.conn.subscriptions[1] = -1
    socket.unwritable_since = socket.loop.time()  # the client fell behind for a moment
    session.conn.deliver(1, 5, b"<snapshot 1:5>")

    await gateway.drain()

    assert socket.frames[-1] == CLOSE
    hints = [
        json.loads(frame[2:])
        for frame in socket.frames[:-1]
        if frame.startswith(text_frame(b"")[:1]) and b'"reconnect"' in frame
    ]
    assert [h["type"] for h in hints] == ["reconnect"]
