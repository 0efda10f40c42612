"""The gateway's /metrics: every series from start-up, bounded close codes, HTTP publishes apart."""

from __future__ import annotations

import httpx
from prometheus_client.parser import text_string_to_metric_families
from wire import Keys, connect, envelope, publish, recv_until, wait_until

from gamesync.connection import ConnectionState
from gamesync.envelope import parse_envelope
from gamesync.metric_labels import (
    AUTH_FAILURE_REASONS,
    CLIENT,
    CLIENT_CLOSE_CODES,
    HANDSHAKE_REFUSALS,
    HTTP_PUBLISH_RESULTS,
    PUBLISH_RESULTS,
    SERVER_CLOSES,
    TOKEN_CACHE_RESULTS,
    TRANSPORTS,
)
from gamesync.server import GatewayServer

Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


async def _samples(gateway: GatewayServer) -> Samples:
    async with httpx.AsyncClient(base_url=gateway.internal_url) as client:
        text = (await client.get("/metrics")).text
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def _count(gateway: GatewayServer, name: str, **labels: str) -> float | None:
    return gateway.gateway.metrics.registry.get_sample_value(name, labels)


async def test_a_fresh_gateway_exports_every_known_label_combination_at_zero(
    gateway: GatewayServer,
) -> None:
    """Before any event: rate() needs the 0 to count the first failure, close or publish."""
    samples = await _samples(gateway)
    expected = {
        **{("gamesync_auth_failures_total", (("reason", r),)): 0.0 for r in AUTH_FAILURE_REASONS},
        **{
            ("gamesync_closes_total", (("code", str(int(c))), ("reason", r), ("transport", t))): 0.0
            for c, r in SERVER_CLOSES
            for t in TRANSPORTS
        },
        **{
            ("gamesync_closes_total", (("code", c), ("reason", CLIENT), ("transport", t))): 0.0
            for c in CLIENT_CLOSE_CODES
            for t in TRANSPORTS
        },
        **{
            ("gamesync_handshakes_refused_total", (("reason", r), ("transport", t))): 0.0
            for r in HANDSHAKE_REFUSALS
            for t in TRANSPORTS
        },
        **{("gamesync_published_total", (("result", r),)): 0.0 for r in PUBLISH_RESULTS},
        **{("gamesync_http_publishes_total", (("result", r),)): 0.0 for r in HTTP_PUBLISH_RESULTS},
        **{
            ("gamesync_token_cache_lookups_total", (("result", r),)): 0.0
            for r in TOKEN_CACHE_RESULTS
        },
    }
    assert {key: samples.get(key) for key in expected} == expected
    assert len(expected) > 60


async def test_gauges_are_exported_with_nothing_to_count(gateway: GatewayServer) -> None:
    """No socket open: gamesync_connections says 0 for every state rather than nothing."""
    samples = await _samples(gateway)
    assert TRANSPORTS == ("websocket", "sse")
    for state in ConnectionState:
        for transport in TRANSPORTS:
            labels = (("state", state.value), ("transport", transport))
            assert samples[("gamesync_connections", labels)] == 0
    assert samples[("gamesync_games", ())] == 0
    assert samples[("gamesync_subscriptions", ())] == 0
    assert samples[("gamesync_key_count", ())] == 1


async def test_client_chosen_close_codes_are_bucketed(gateway: GatewayServer, keys: Keys) -> None:
    """A client's 3000-4999 close codes land in two series, not one per code."""
    for code in (4321, 4999, 3001):
        async with await connect(gateway, token=keys.token()) as ws:
            await recv_until(ws, lambda m: m["type"] == "welcome")
            await ws.close(code, "bye")
    await wait_until(
        lambda: (
            _count(
                gateway,
                "gamesync_closes_total",
                code="client_3xxx",
                reason=CLIENT,
                transport="websocket",
            )
            == 1
        ),
        what="the 3xxx close counted",
    )
    samples = await _samples(gateway)
    labels = (("code", "client_4xxx"), ("reason", CLIENT), ("transport", "websocket"))
    assert samples[("gamesync_closes_total", labels)] == 2
    codes = {dict(labels).get("code") for name, labels in samples if name.startswith("gamesync_c")}
    assert not codes & {"4321", "4999", "3001"}


async def test_a_client_coming_back_with_its_token_is_a_cache_hit(
    gateway: GatewayServer, keys: Keys
) -> None:
    token = keys.token()
    tokens = gateway.gateway.keys.tokens
    for _ in range(2):
        async with await connect(gateway, token=token) as ws:
            await recv_until(ws, lambda m: m["type"] == "welcome")
            assert len(tokens) == 0  # a connected client holds no entry
        await wait_until(lambda: len(tokens) == 1, what="the token remembered once it left")
    async with await connect(gateway, token="not-a-token") as ws:
        await recv_until(ws, lambda m: m["type"] == "error")
    samples = await _samples(gateway)
    assert samples[("gamesync_token_cache_lookups_total", (("result", "hit"),))] == 1
    assert samples[("gamesync_token_cache_lookups_total", (("result", "miss"),))] == 2
    assert samples[("gamesync_token_cache_entries", ())] == 1


async def test_server_closes_keep_their_own_codes(gateway: GatewayServer, keys: Keys) -> None:
    async with await connect(gateway, token="not-a-token") as ws:
        await recv_until(ws, lambda m: m["type"] == "error")
    await wait_until(
        lambda: (
            _count(
                gateway,
                "gamesync_closes_total",
                code="4401",
                reason="malformed token",
                transport="websocket",
            )
            == 1
        ),
        what="the 4401 close counted",
    )


async def test_only_http_requests_count_as_http_publishes(gateway: GatewayServer) -> None:
    """The HTTP panel counts the endpoint's answers; a publish from inside (--demo) is apart."""
    assert (await publish(gateway, envelope(5, 2))).json() == {"published": True}
    assert (await publish(gateway, envelope(5, 1))).json() == {"published": False}
    assert (await publish(gateway, b"{not json", game_id=5)).status_code == 400
    assert (await publish(gateway, envelope(5, 3), token="wrong")).status_code == 401
    too_big = envelope(5, 4, snapshot={"x": "y" * gateway.settings.max_publish_bytes})
    assert (await publish(gateway, too_big)).status_code == 413
    # What `--demo` does: straight to Gateway.publish, no HTTP.
    await gateway.gateway.publish(parse_envelope(b'{"gameId": 6, "version": 1, "snapshot": {}}'))

    http = {
        r: _count(gateway, "gamesync_http_publishes_total", result=r) for r in HTTP_PUBLISH_RESULTS
    }
    assert http == {
        "published": 1,
        "stale": 1,
        "invalid": 1,
        "unauthorized": 1,
        "too_large": 1,
        "unavailable": 0,
        "disabled": 0,
        "rate_limited": 0,
    }
    assert _count(gateway, "gamesync_published_total", result="published") == 2
    assert _count(gateway, "gamesync_published_total", result="stale") == 1
