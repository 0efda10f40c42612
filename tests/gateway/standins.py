"""Stand-ins for the edges below a session: a socket that records frames, a session shell.

They implement the `connection.Socket` and `registry.Member` protocols with a real `Connection`,
so registry, sweeper and drain tests run the real code down to the bytes a socket would send.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from gamesync.connection import Connection, DeliveryStats
from gamesync.framing import Framing
from gamesync.keys import Identity

CLOSE = b"<close frame>"


class StandInSocket:
    """Frames go to a list, like bytes into the transport buffer; the test sets the clocks."""

    framing = Framing.WEBSOCKET
    ended_for: int | None = None

    def __init__(self) -> None:
        self.last_seen = 0.0
        self.unwritable_since: float | None = None
        self.on_writable: Callable[[], None] | None = None
        self.on_gone: Callable[[], None] | None = None
        self.gone = False
        self.closes: list[tuple[int, str, float | None]] = []
        self.frames: list[bytes] = []
        self.pings = 0

    @property
    def is_open(self) -> bool:
        return not self.closes

    @property
    def can_write(self) -> bool:
        return self.is_open and self.unwritable_since is None

    @property
    def is_gone(self) -> bool:
        return self.gone

    def release(self) -> None:
        """The transport is gone (what connection_lost does)."""
        self.gone = True
        on_gone, self.on_gone = self.on_gone, None
        if on_gone is not None:
            on_gone()

    def abort(self) -> None:
        self.release()

    def write_frame(self, frame: bytes) -> None:
        self.frames.append(frame)

    def send_ping(self) -> None:
        self.pings += 1

    def close_now(self, code: int, reason: str = "", *, abort_after: float | None = None) -> bool:
        self.frames.append(CLOSE)
        self.closes.append((code, reason, abort_after))
        return True

    def messages(self) -> list[dict[str, Any]]:
        """The text frames written so far, decoded (small frames only: 2-byte header)."""
        return [json.loads(f[2:]) for f in self.frames if f != CLOSE]


class StandInMember:
    """The smallest session: a real Connection, and close/send as the websocket session does."""

    def __init__(self, user: str | None = None, *, expires_at: int = 2**40) -> None:
        self.socket = StandInSocket()
        self.conn = Connection(self.socket, 0.0, DeliveryStats())
        #: the token it authenticated with (the real session keeps it for its whole life)
        self.token: str | None = None if user is None else f"token-of-{user}"
        if user is not None:
            self.conn.identity = Identity(user_id=user, expires_at=expires_at, games=None, kid=None)

    def send(self, payload: bytes) -> None:
        self.conn.send_message(payload)

    def close(
        self,
        code: int,
        reason: str,
        *,
        error: str | None = None,
        abort_after: float | None = None,
    ) -> None:
        last_words = None
        if error is not None:
            last_words = json.dumps({"type": "error", "code": error}).encode()
        self.conn.close(code, reason, last_words=last_words, abort_after=abort_after)
