"""The peer: python-socketio (ASGI under uvicorn, ``AsyncRedisManager``, a room per game).

Run as ``python -m gamesync.bench.peer PORT REDIS_URL``. A client joins the room of the game
named in its connect ``auth`` payload (``{"game": 42}``); the bench publisher emits event ``m``
to room ``game:42`` through a ``write_only=True`` emitter. python-socketio is an optional extra
(``gamesync[bench]``), imported only here and in the publisher's emitter.
"""

from __future__ import annotations

import sys
from typing import Any

from gamesync.bench._serve import serve_asgi

__all__ = ["main", "require_socketio"]


def require_socketio() -> None:
    """Raise a clear error when the optional python-socketio extra is missing."""
    try:
        import socketio  # noqa: F401
    except ImportError as exc:
        raise RuntimeError(
            "the peer scenario needs python-socketio: pip install 'gamesync[bench]'"
        ) from exc


def build_app(redis_url: str) -> Any:
    import socketio

    sio = socketio.AsyncServer(
        async_mode="asgi",
        client_manager=socketio.AsyncRedisManager(redis_url),
        cors_allowed_origins="*",
    )

    @sio.event  # type: ignore[untyped-decorator]
    async def connect(sid: str, environ: dict[str, Any], auth: dict[str, Any] | None) -> None:
        game = int((auth or {}).get("game", 0))
        await sio.enter_room(sid, f"game:{game}")

    return socketio.ASGIApp(sio)


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    serve_asgi(build_app(args[1]), int(args[0]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
