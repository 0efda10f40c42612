"""The internal port: publish endpoint answers, stats, metrics; nothing of it on the public port."""

from __future__ import annotations

import json
import time

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families
from wire import PUBLISH_TOKEN, GatewayFactory, Keys, connect, envelope, publish, recv_until

from gamesync.app import PUBLISH_AUTH_BURST, PUBLISH_AUTH_RATE
from gamesync.server import GatewayServer


async def test_publish_answers_published_then_stale(gateway: GatewayServer) -> None:
    first = await publish(gateway, envelope(1, 2))
    again = await publish(gateway, envelope(1, 2))
    older = await publish(gateway, envelope(1, 1))
    assert (first.status_code, first.json()) == (200, {"published": True})
    assert (again.status_code, again.json()) == (200, {"published": False})
    assert (older.status_code, older.json()) == (200, {"published": False})


@pytest.mark.parametrize("token", ["wrong", PUBLISH_TOKEN + "x", PUBLISH_TOKEN[:-1]])
async def test_publish_without_the_right_token_is_401(gateway: GatewayServer, token: str) -> None:
    response = await publish(gateway, envelope(1, 1), token=token)
    assert response.status_code == 401


async def test_guessing_the_publish_token_is_rate_limited_per_source(
    gateway: GatewayServer,
) -> None:
    """Issue 13.5: the publish endpoint answered wrong tokens as fast as they came.

    The limiter refills `PUBLISH_AUTH_RATE` guesses a second after its burst: on a loaded
    machine the burst's requests can take long enough for one more to be allowed, so the test
    counts what the clock allowed instead of assuming the burst went out at once.
    """
    started = time.monotonic()
    answers = []
    for i in range(3 * PUBLISH_AUTH_BURST):  # bounded: a limiter that never limits fails below
        answers.append((await publish(gateway, envelope(1, 1), token=f"guess-{i}")).status_code)
        if answers[-1] == 429:
            break
    limited_at = time.monotonic()
    refilled = (limited_at - started) * PUBLISH_AUTH_RATE
    assert answers[-1] == 429, answers
    unauthorized = len(answers) - 1
    assert answers[:-1] == [401] * unauthorized
    assert PUBLISH_AUTH_BURST <= unauthorized <= PUBLISH_AUTH_BURST + int(refilled), answers
    # While limited, not even the right token is checked: a guess cannot tell right from wrong
    # (unless a whole second passed since the 429 and one more guess was allowed).
    right = await publish(gateway, envelope(1, 1))
    refilled_since = (time.monotonic() - limited_at) * PUBLISH_AUTH_RATE >= 1
    assert right.status_code == 429 or (refilled_since and right.status_code == 200)
    limited = 1 + (right.status_code == 429)
    count = gateway.gateway.metrics.registry.get_sample_value
    assert count("gamesync_http_publishes_total", {"result": "rate_limited"}) == limited
    assert count("gamesync_http_publishes_total", {"result": "unauthorized"}) == unauthorized


async def test_a_rate_limited_guess_says_when_to_come_back(gateway: GatewayServer) -> None:
    for i in range(3 * PUBLISH_AUTH_BURST):
        response = await publish(gateway, envelope(1, 1), token=f"guess-{i}")
        if response.status_code == 429:
            break
    assert response.status_code == 429
    assert int(response.headers["retry-after"]) >= 1


async def test_the_internal_port_listens_on_its_own_host(gateway_factory: GatewayFactory) -> None:
    """Issue 13.5: both ports listened on --host (0.0.0.0 in pods)."""
    server = await gateway_factory(host="127.0.0.1", internal_host="127.0.0.2")
    assert server.public_url.startswith("http://127.0.0.1:")
    assert server.internal_url.startswith("http://127.0.0.2:")
    async with httpx.AsyncClient(base_url=server.internal_url) as client:
        assert (await client.get("/readyz")).status_code == 200
    internal_port = server.internal_url.rsplit(":", 1)[1]
    async with httpx.AsyncClient() as client:
        with pytest.raises(httpx.ConnectError):
            await client.get(f"http://127.0.0.1:{internal_port}/metrics")


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        (b"{", "not valid JSON"),
        (b"[]", "JSON object"),
        (json.dumps({"gameId": 1, "snapshot": {}}).encode(), "'version'"),
        (json.dumps({"gameId": 2, "version": 1, "snapshot": {}}).encode(), "differs from the path"),
        (json.dumps({"gameId": 1, "version": 1, "snapshot": []}).encode(), "'snapshot'"),
        (
            json.dumps({"gameId": 1, "version": 1, "snapshot": {}, "viewers": []}).encode(),
            "viewers",
        ),
        (json.dumps({"gameId": 1, "version": True, "snapshot": {}}).encode(), "'version'"),
        (
            json.dumps({"gameId": 1, "version": 1, "snapshot": {}, "traceparent": "x"}).encode(),
            "traceparent",
        ),
    ],
)
async def test_invalid_envelope_is_400_with_a_reason(
    gateway: GatewayServer, body: bytes, reason: str
) -> None:
    response = await publish(gateway, body, game_id=1)
    assert response.status_code == 400
    assert reason in response.json()["error"]


async def test_envelope_over_the_size_limit_is_413(gateway: GatewayServer) -> None:
    doc = envelope(1, 1, snapshot={"pad": "x" * (1 << 20)})
    response = await publish(gateway, doc)
    assert response.status_code == 413


async def test_publish_endpoint_is_off_with_keys_and_no_publish_token(
    gateway_factory: GatewayFactory,
) -> None:
    server = await gateway_factory(publish_token=None)
    response = await publish(server, envelope(1, 1))
    assert response.status_code == 404


async def test_internal_endpoints_are_not_served_on_the_public_port(gateway: GatewayServer) -> None:
    async with httpx.AsyncClient(base_url=gateway.public_url) as client:
        for path in ("/metrics", "/v1/stats"):
            assert (await client.get(path)).status_code == 404
        post = await client.post("/v1/games/1/snapshots", content=b"{}")
        assert post.status_code == 404
        assert (await client.get("/healthz")).status_code == 200
        assert (await client.get("/readyz")).json() == {"ready": True, "reasons": []}
        assert (await client.get("/")).status_code == 404  # the console is dev mode only


async def test_stats_report_connections_subscriptions_and_kids(
    gateway: GatewayServer, keys: Keys
) -> None:
    async with await connect(gateway, "/ws/games/3", token=keys.token()) as ws:
        await recv_until(ws, lambda m: m["type"] == "subscribed")
        async with httpx.AsyncClient(base_url=gateway.internal_url) as client:
            stats = (await client.get("/v1/stats")).json()
    assert stats["connections"] == 1
    assert stats["subscriptions"] == 1
    assert stats["games"] == 1
    assert stats["kids"] == ["test-1"]
    assert stats["ready"] is True
    assert stats["draining"] is False
    assert stats["runtimeConfig"] == {"hash": None, "valid": True, "error": None}


async def test_metrics_parse_and_count_deliveries_and_closes(
    gateway: GatewayServer, keys: Keys
) -> None:
    async with await connect(gateway, "/ws/games/3", token=keys.token()) as ws:
        await recv_until(ws, lambda m: m["type"] == "subscribed")
        await publish(gateway, envelope(3, 1))
        await recv_until(ws, lambda m: m["type"] == "snapshot")
    async with await connect(gateway, token="bad") as refused:
        await recv_until(refused, lambda m: m["type"] == "error")
    async with httpx.AsyncClient(base_url=gateway.internal_url) as client:
        text = (await client.get("/metrics")).text
    samples = {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }
    assert samples[("gamesync_deliveries_total", (("transport", "websocket"),))] == 1
    assert samples[("gamesync_deliveries_total", (("transport", "sse"),))] == 0
    assert samples[("gamesync_fanouts_total", ())] == 1
    assert samples[("gamesync_auth_failures_total", (("reason", "malformed token"),))] == 1
    assert (
        samples[
            (
                "gamesync_closes_total",
                (("code", "4401"), ("reason", "malformed token"), ("transport", "websocket")),
            )
        ]
        == 1
    )
    assert samples[("gamesync_publish_to_send_seconds_count", ())] == 1
    open_websockets = ("gamesync_connections", (("state", "open"), ("transport", "websocket")))
    assert samples[open_websockets] == 0
    for (name, labels), _ in samples.items():
        assert not any(k in ("user", "game", "gameId", "user_id") for k, _ in labels), name


async def test_readiness_reasons_are_one_list_for_both_ports_and_the_ready_flag(
    gateway: GatewayServer,
) -> None:
    gw = gateway.gateway
    assert (gw.ready, gw.not_ready_reasons()) == (True, [])
    await gw.drain()  # no connections: fails readiness and returns
    assert (gw.ready, gw.not_ready_reasons()) == (False, ["draining"])
    for base_url in (gateway.public_url, gateway.internal_url):
        async with httpx.AsyncClient(base_url=base_url) as client:
            response = await client.get("/readyz")
        assert response.status_code == 503
        assert response.json() == {"ready": False, "reasons": ["draining"]}
