"""Run an ASGI app under uvicorn the way the gateway does, and announce readiness."""

from __future__ import annotations

import asyncio
import contextlib
import resource
from typing import Any

__all__ = ["serve_asgi"]


def serve_asgi(app: Any, port: int, *, ws: str = "websockets-sansio") -> None:
    """uvicorn with ``--ws websockets-sansio``, deflate off, backlog 4096; prints the ready line."""
    import uvicorn
    import uvloop

    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    with contextlib.suppress(ValueError, OSError):
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    config = uvicorn.Config(
        app,
        host="127.0.0.1",
        port=port,
        ws=ws,
        ws_per_message_deflate=False,
        log_level="warning",
        access_log=False,
        backlog=4096,
        lifespan="off",
    )
    server = uvicorn.Server(config)

    async def run() -> None:
        task = asyncio.create_task(server.serve())
        # uvicorn has no "started" event to wait on; poll its flag with a short period.
        while not server.started and not task.done():  # noqa: ASYNC110
            await asyncio.sleep(0.02)
        print(f"GAMESYNC_READY public=http://127.0.0.1:{port}", flush=True)
        await task

    uvloop.run(run())
