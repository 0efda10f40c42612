"""An OTLP/HTTP trace sink for benchmarks with tracing on: decodes each export, counts spans.

python -m gamesync.bench.otlpsink --port 4318     # then point runtime config tracing here
"""

from __future__ import annotations

import argparse

import uvicorn
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

__all__ = ["main"]

SPANS = {"count": 0, "exports": 0}


async def traces(request: Request) -> Response:
    message = ExportTraceServiceRequest()
    message.ParseFromString(await request.body())
    SPANS["exports"] += 1
    SPANS["count"] += sum(len(ss.spans) for rs in message.resource_spans for ss in rs.scope_spans)
    return Response(
        ExportTraceServiceResponse().SerializeToString(), media_type="application/x-protobuf"
    )


async def count(request: Request) -> Response:
    return JSONResponse(SPANS)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m gamesync.bench.otlpsink")
    parser.add_argument("--port", type=int, default=4318)
    args = parser.parse_args(argv)
    app = Starlette(routes=[Route("/v1/traces", traces, methods=["POST"]), Route("/count", count)])
    uvicorn.run(app, host="127.0.0.1", port=args.port, log_level="warning")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
