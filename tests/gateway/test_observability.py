"""Traces into a real OTLP receiver, live runtime-config switches, and JSON logs without secrets."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import httpx
import pytest
from wire import GatewayFactory, Keys, connect, envelope, publish, recv_until, wait_until

from gamesync.logs import JsonFormatter
from otlp_receiver import otlp_receiver

TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"
PARENT = "00f067aa0ba902b7"


def _runtime(path: Path, **tracing: object) -> None:
    path.write_text(json.dumps({"tracing": tracing, "logLevel": "info"}))


async def _stats(server: object) -> dict[str, object]:
    async with httpx.AsyncClient(base_url=server.internal_url) as client:  # type: ignore[attr-defined]
        return dict((await client.get("/v1/stats")).json())


async def test_published_traceparent_continues_into_gateway_spans(
    gateway_factory: GatewayFactory, keys: Keys, tmp_path: Path
) -> None:
    async with otlp_receiver() as receiver:
        runtime = tmp_path / "runtime.json"
        _runtime(
            runtime,
            enabled=True,
            endpoint=receiver.url,
            sampler="parentbased_traceidratio",
            ratio=0.0,
            resourceAttributes={"deployment.environment": "test"},
        )
        server = await gateway_factory(runtime_config=runtime, pod_name="gw-test-1")
        async with await connect(server, "/ws/games/12", token=keys.token()) as ws:
            await recv_until(ws, lambda m: m["type"] == "subscribed")
            doc = envelope(12, 5, traceparent=f"00-{TRACE_ID}-{PARENT}-01")
            await publish(server, doc)
            await recv_until(ws, lambda m: m["type"] == "snapshot")
        server.gateway.tracing.flush()
        await wait_until(lambda: bool(receiver.named("gamesync.fanout")), what="fan-out span")
    receive = receiver.named("gamesync.receive")[0]
    fanout = receiver.named("gamesync.fanout")[0]
    assert receive.trace_id == fanout.trace_id == TRACE_ID
    assert receive.parent_span_id == PARENT
    assert fanout.parent_span_id == receive.span_id
    assert fanout.attributes["gamesync.game_id"] == 12
    assert fanout.attributes["gamesync.game_version"] == 5
    assert fanout.attributes["gamesync.recipients"] == 1
    assert fanout.attributes["gamesync.bytes"] > 0
    assert fanout.attributes["gamesync.conflated"] == 0
    assert fanout.resource["service.name"] == "gamesync-gateway"
    assert fanout.resource["k8s.pod.name"] == "gw-test-1"
    assert fanout.resource["deployment.environment"] == "test"
    # Ratio 0 with a parent-based sampler: unparented lifecycle events are not sampled.
    assert not receiver.named("gamesync.connect")


async def test_runtime_config_switches_ratio_and_endpoint_live_without_dropping_a_socket(
    gateway_factory: GatewayFactory, keys: Keys, tmp_path: Path
) -> None:
    async with otlp_receiver() as first, otlp_receiver() as second:
        runtime = tmp_path / "runtime.json"
        _runtime(runtime, enabled=True, endpoint=first.url, sampler="traceidratio", ratio=0.0)
        server = await gateway_factory(runtime_config=runtime)
        gw = server.gateway
        async with await connect(server, "/ws/games/1", token=keys.token()) as ws:
            await recv_until(ws, lambda m: m["type"] == "subscribed")
            await publish(server, envelope(1, 1))
            await recv_until(ws, lambda m: m["type"] == "snapshot")
            hash_before = (await _stats(server))["runtimeConfig"]
            # Switch endpoint and ratio: every new trace is sampled and goes to `second`.
            _runtime(runtime, enabled=True, endpoint=second.url, sampler="traceidratio", ratio=1.0)
            await wait_until(lambda: gw.runtime.reloads == 2, what="reload")
            await publish(server, envelope(1, 2))
            assert (await recv_until(ws, lambda m: m["type"] == "snapshot"))["gameVersion"] == 2
            gw.tracing.flush()
            await wait_until(lambda: bool(second.named("gamesync.fanout")), what="span at second")
            assert not first.named("gamesync.fanout")
            hash_after = (await _stats(server))["runtimeConfig"]
            assert hash_before != hash_after
            # An invalid file is refused; the last good config stays, and so does the socket.
            runtime.write_text(json.dumps({"tracing": {"ratio": 7}}))
            await wait_until(lambda: gw.runtime.failures == 1, what="refusal")
            stats = await _stats(server)
            assert stats["runtimeConfig"]["hash"] == hash_after["hash"]  # type: ignore[index]
            assert stats["runtimeConfig"]["valid"] is False  # type: ignore[index]
            assert gw.tracing.config is not None
            assert gw.tracing.config.ratio == 1.0
            await publish(server, envelope(1, 3))
            assert (await recv_until(ws, lambda m: m["type"] == "snapshot"))["gameVersion"] == 3
            # Tracing off: the envelopes after it make no spans anywhere.
            gw.tracing.flush()
            _runtime(runtime, enabled=False)
            await wait_until(lambda: not gw.tracing.enabled, what="tracing off")
            await publish(server, envelope(1, 4))
            await recv_until(ws, lambda m: m["type"] == "snapshot")
            assert [s for s in second.spans if s.attributes.get("gamesync.game_version") == 3]
            assert not [s for s in second.spans if s.attributes.get("gamesync.game_version") == 4]
            assert ws.close_code is None


async def test_grpc_protocol_is_refused_and_the_old_config_kept(
    gateway_factory: GatewayFactory, tmp_path: Path
) -> None:
    runtime = tmp_path / "runtime.json"
    _runtime(runtime, enabled=False)
    server = await gateway_factory(runtime_config=runtime)
    _runtime(runtime, enabled=True, protocol="grpc", endpoint="http://127.0.0.1:4317")
    await wait_until(lambda: server.gateway.runtime.failures == 1, what="refusal")
    assert "not supported" in (server.gateway.runtime.error or "")
    assert server.gateway.tracing.enabled is False


async def test_connection_end_is_one_json_line_without_the_token(
    gateway_factory: GatewayFactory, keys: Keys, caplog: pytest.LogCaptureFixture
) -> None:
    server = await gateway_factory()
    token = keys.token("7")
    with caplog.at_level(logging.INFO, logger="gamesync.connections"):
        async with await connect(server, f"/ws/games/3?token={token}") as ws:
            await recv_until(ws, lambda m: m["type"] == "subscribed")
        await wait_until(lambda: not len(server.gateway.registry), what="session end")
    records = [r for r in caplog.records if r.name == "gamesync.connections"]
    assert len(records) == 1
    line = JsonFormatter().format(records[0])
    doc = json.loads(line)
    assert doc["message"] == "connection_end"
    assert doc["user"] == "7"
    assert doc["games"] == [3]
    assert doc["closedBy"] == "client"
    assert doc["framesOut"] >= 2
    assert token not in line
    for record in caplog.records:
        assert token not in JsonFormatter().format(record)
