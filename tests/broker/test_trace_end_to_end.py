"""One trace from the backend's commit to the gateway's fan-out, through a real Redis."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from pods import FAST, Keys, PlayerFactory, PodFactory, eventually

from gamesync.publisher import Publisher
from otlp_receiver import otlp_receiver
from redis_servers import RedisServer

pytestmark = pytest.mark.redis


async def test_backend_commit_span_continues_into_the_gateways_fanout(
    redis_server: RedisServer,
    pod_factory: PodFactory,
    player_factory: PlayerFactory,
    keys: Keys,
    tmp_path: Path,
) -> None:
    exporter = InMemorySpanExporter()
    backend = TracerProvider()  # the game backend's own OpenTelemetry set-up
    backend.add_span_processor(SimpleSpanProcessor(exporter))
    async with otlp_receiver() as receiver:
        runtime = tmp_path / "runtime.json"
        runtime.write_text(
            json.dumps({"tracing": {"enabled": True, "endpoint": receiver.url, "ratio": 0.0}})
        )
        pod = await pod_factory(f"{redis_server.url}?{FAST}", runtime_config=runtime)
        player = await player_factory(pod)
        await player.subscribe(21)
        async with Publisher(redis_server.url, tracer_provider=backend) as publisher:
            tracer = backend.get_tracer("nommie.backend")
            with tracer.start_as_current_span("commit move") as commit:
                assert await publisher.publish({"gameId": 21, "version": 4, "snapshot": {}})
        await player.wait_version(21, 4)
        pod.gateway.tracing.flush()
        await eventually(lambda: bool(receiver.named("gamesync.fanout")), what="fan-out span")
    (publish,) = [s for s in exporter.get_finished_spans() if s.name == "gamesync.publish"]
    assert publish.kind is trace.SpanKind.PRODUCER
    assert publish.parent is not None
    assert publish.parent.span_id == commit.get_span_context().span_id
    receive = receiver.named("gamesync.receive")[0]
    fanout = receiver.named("gamesync.fanout")[0]
    trace_id = f"{publish.context.trace_id:032x}"
    assert receive.trace_id == fanout.trace_id == trace_id
    assert receive.parent_span_id == f"{publish.context.span_id:016x}"
    assert fanout.parent_span_id == receive.span_id
    assert fanout.attributes["gamesync.recipients"] == 1
    # The lag the broker measured from publishedAt is on the receive span.
    assert receive.attributes["gamesync.broker_lag_ms"] >= 0


async def test_without_tracing_in_the_backend_no_traceparent_is_invented(
    redis_server: RedisServer,
) -> None:
    async with Publisher(redis_server.url, tracer_provider=trace.NoOpTracerProvider()) as pub:
        assert await pub.publish({"gameId": 22, "version": 1, "snapshot": {}})
    stored = json.loads(redis_server.client().get("game:{22}:latest") or b"{}")
    assert "traceparent" not in stored
    assert "publishedAt" in stored
