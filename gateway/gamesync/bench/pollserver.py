"""The polling baseline: what Nommie ran before push, a snapshot endpoint with ETag/304.

Run as ``python -m gamesync.bench.pollserver PORT``. ``GET /games/{id}/snapshot`` answers the
latest snapshot with ``ETag: "v<version>"``, or 304 when ``If-None-Match`` matches;
``POST /games/{id}/publish`` stores a new one (the bench publisher's feed). Bodies are kept
pre-encoded, which flatters polling: Nommie's endpoint read and serialised state per request.
"""

from __future__ import annotations

import json
import sys

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from gamesync.bench._serve import serve_asgi

__all__ = ["build_app", "main"]


def build_app() -> Starlette:
    latest: dict[int, tuple[str, bytes]] = {}

    async def snapshot(request: Request) -> Response:
        game = int(request.path_params["game"])
        found = latest.get(game)
        if found is None:
            return Response(status_code=404)
        etag, body = found
        if request.headers.get("if-none-match") == etag:
            return Response(status_code=304, headers={"ETag": etag})
        return Response(body, media_type="application/json", headers={"ETag": etag})

    async def publish(request: Request) -> Response:
        game = int(request.path_params["game"])
        body = await request.body()
        version = int(json.loads(body)["gameVersion"])
        current = latest.get(game)
        if current is None or int(current[0][2:-1]) < version:
            latest[game] = (f'"v{version}"', body)
        return Response(b'{"published":true}', media_type="application/json")

    return Starlette(
        routes=[
            Route("/games/{game:int}/snapshot", snapshot, methods=["GET"]),
            Route("/games/{game:int}/publish", publish, methods=["POST"]),
        ]
    )


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    serve_asgi(build_app(), int(args[0]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
