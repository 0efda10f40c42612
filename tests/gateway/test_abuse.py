"""gamesync.abuse: what counts as abuse, and the penalty an address pays for it."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable
from urllib.parse import urlsplit

import pytest
from rawws import RawClient, Refused
from wire import GatewayFactory, Keys, wait_until

from gamesync.abuse import AbusePenalty, client_address, is_offence
from gamesync.protocol import Close
from gamesync.server import GatewayServer


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


@pytest.mark.parametrize(
    "code", [Close.PROTOCOL_ERROR, Close.INVALID_DATA, Close.POLICY, Close.TOO_BIG]
)
def test_closes_over_the_protocol_or_a_budget_are_offences(code: int) -> None:
    assert is_offence(code, authenticated=True)
    assert is_offence(code, authenticated=False)


def test_a_token_refused_at_authentication_is_an_offence() -> None:
    assert is_offence(Close.UNAUTHORIZED, authenticated=False, error="unauthorized")


@pytest.mark.parametrize(
    ("code", "authenticated", "error"),
    [
        # an honest client's stale token, at connect
        (Close.UNAUTHORIZED, False, "token_expired"),
        # a live session's token expiring, its key revoked, or a renewal refused
        (Close.UNAUTHORIZED, True, "token_expired"),
        (Close.UNAUTHORIZED, True, "unauthorized"),
        (Close.TRY_AGAIN_LATER, False, None),  # a busy pod, a slow reader
        (Close.TIMEOUT, True, None),  # idle, heartbeat
        (Close.NORMAL, True, None),
        (1001, True, None),
        (Close.DRAINING, True, None),
        (Close.FORBIDDEN, True, "forbidden"),
        (Close.TOO_MANY_CONNECTIONS, True, None),
    ],
)
def test_what_an_honest_client_meets_is_no_offence(
    code: int, authenticated: bool, error: str | None
) -> None:
    assert not is_offence(code, authenticated=authenticated, error=error)


def test_an_address_is_refused_once_its_burst_is_spent_and_let_in_once_it_refilled() -> None:
    clock = Clock()
    penalty = AbusePenalty(0.5, 3, clock)
    for _ in range(2):
        penalty.offended("10.0.0.1")
    assert penalty.refusal("10.0.0.1") is None  # one offence left
    penalty.offended("10.0.0.1")
    assert penalty.refusal("10.0.0.1") == 2  # a token back in 1/0.5 s: Retry-After 2
    assert penalty.refusal("10.0.0.2") is None  # another address: nothing to pay
    assert (penalty.penalised, penalty.offences) == (1, 3)
    clock.now = 1.5
    assert penalty.refusal("10.0.0.1") == 1  # whole seconds, rounded up
    clock.now = 2.0
    assert penalty.refusal("10.0.0.1") is None
    assert penalty.penalised == 0
    penalty.offended("10.0.0.1")  # one more offence: refused again at once
    assert penalty.refusal("10.0.0.1") == 2


def test_a_refused_head_counts_only_where_the_peer_is_the_client() -> None:
    direct = AbusePenalty(0.1, 1, Clock())
    direct.head_refused(503, "10.0.0.1")  # the pod's own state: no offence
    assert direct.refusal("10.0.0.1") is None
    direct.head_refused(431, "10.0.0.1")
    assert direct.refusal("10.0.0.1") is not None
    # Behind a proxy the peer is the proxy: penalising it would refuse everyone behind it.
    proxied = AbusePenalty(0.1, 1, Clock(), header="x-forwarded-for")
    for status in (408, 414, 431):
        proxied.head_refused(status, "10.0.0.9")
    assert proxied.refusal("10.0.0.9") is None


def test_the_clients_address_is_the_proxys_last_entry_else_the_peer() -> None:
    scope = {
        "client": ("10.0.0.9", 5555),
        "headers": [(b"x-forwarded-for", b"6.6.6.6, 203.0.113.7")],
    }
    assert client_address(scope, "x-forwarded-for") == "203.0.113.7"
    assert client_address(scope, None) == "10.0.0.9"
    assert client_address({"client": ("10.0.0.9", 1), "headers": []}, "x-real-ip") == "10.0.0.9"


# Over the wire: a real gateway, clients from their own loopback addresses -------------------

ATTACKER, BYSTANDER = "127.0.5.1", "127.0.5.2"


def _address(server: GatewayServer) -> tuple[str, int]:
    parts = urlsplit(server.public_url)
    assert parts.hostname is not None
    assert parts.port is not None
    return parts.hostname, parts.port


async def _refused(connecting: Awaitable[RawClient]) -> Refused:
    try:
        client = await connecting
    except Refused as refused:
        return refused
    client.close()
    raise AssertionError("the upgrade was accepted")


async def _send_oversized(server: GatewayServer, token: str, source: str) -> int | None:
    """Connect from `source`, send a frame over the size limit; the close code it got."""
    async with await RawClient.connect(*_address(server), "/ws", token, source=source) as client:
        client.send_text("x" * 8192)  # over --max-frame-bytes (4 KiB)
        return (await client.read_until_close()).close_code


async def test_an_address_that_keeps_sending_oversized_frames_gets_429_until_retry_after(
    gateway_factory: GatewayFactory, keys: Keys
) -> None:
    """Hostile clients: thrown out 1009, an attacker was back in milliseconds, each time
    costing a handshake and a token check; now its address is refused before any of that."""
    server = await gateway_factory(abuse_burst=3, abuse_rate=1)
    metrics = server.gateway.metrics.registry
    token = keys.token("big")
    for _ in range(3):
        assert await _send_oversized(server, token, ATTACKER) == 1009
    refused = await _refused(RawClient.connect(*_address(server), "/ws", token, source=ATTACKER))
    assert refused.status == 429, refused.head
    retry_after = int(refused.header("retry-after") or 0)
    assert 1 <= retry_after <= 2
    assert metrics.get_sample_value("gamesync_abuse_penalised_addresses") == 1
    assert metrics.get_sample_value("gamesync_abuse_offences_total") == 3
    refusals = {"reason": "penalised", "transport": "websocket"}
    assert metrics.get_sample_value("gamesync_handshakes_refused_total", refusals) == 1

    # Another address is not affected.
    bystander = await RawClient.connect(*_address(server), "/ws", token, source=BYSTANDER)
    try:
        assert json.loads((await bystander.read_frame()).payload)["type"] == "welcome"
    finally:
        bystander.close()

    # The penalty lifts once Retry-After has passed (and not long before).
    loop = asyncio.get_running_loop()
    refused_at = loop.time()
    await wait_until(
        lambda: (
            server.gateway.penalty is not None and server.gateway.penalty.refusal(ATTACKER) is None
        ),
        timeout=retry_after + 2,
        what="the penalty lifted",
    )
    assert loop.time() - refused_at >= retry_after - 1
    back = await RawClient.connect(*_address(server), "/ws", token, source=ATTACKER)
    try:
        assert json.loads((await back.read_frame()).payload)["type"] == "welcome"
    finally:
        back.close()
    assert metrics.get_sample_value("gamesync_abuse_penalised_addresses") == 0


async def test_behind_a_proxy_the_penalty_falls_on_the_forwarded_address_only(
    gateway_factory: GatewayFactory, keys: Keys
) -> None:
    """With a client-address header every peer is the proxy: the address in the header pays,
    refused once its head has parsed, and the others behind the same proxy get in."""
    server = await gateway_factory(client_address_header="x-forwarded-for", abuse_burst=2)
    host, port = _address(server)

    def through_proxy(client: str, token: str) -> Awaitable[RawClient]:
        forwarded = {"X-Forwarded-For": f"6.6.6.6, {client}"}
        return RawClient.connect(host, port, "/ws", token, headers=forwarded)

    for _ in range(2):  # garbage tokens: each refused 4401 at authentication
        client = await through_proxy("203.0.113.5", "garbage.garbage.garbage")
        try:
            assert (await client.read_until_close()).close_code == 4401
        finally:
            client.close()
    refused = await _refused(through_proxy("203.0.113.5", keys.token("7")))
    assert refused.status == 429, refused.head
    assert refused.header("retry-after") is not None
    other = await through_proxy("203.0.113.6", keys.token("8"))
    try:
        assert json.loads((await other.read_frame()).payload)["type"] == "welcome"
    finally:
        other.close()


async def test_a_token_expired_at_connect_costs_its_address_nothing(
    gateway_factory: GatewayFactory, keys: Keys
) -> None:
    """An honest client reconnecting with a stale token (a laptop waking up) is no attacker."""
    server = await gateway_factory(abuse_burst=1)
    expired = keys.token("7", ttl=-60)
    for _ in range(3):
        async with await RawClient.connect(
            *_address(server), "/ws", expired, source=BYSTANDER
        ) as client:
            assert (await client.read_until_close()).close_code == 4401
    welcome = await RawClient.connect(*_address(server), "/ws", keys.token(), source=BYSTANDER)
    welcome.close()
    assert server.gateway.penalty is not None
    assert server.gateway.penalty.offences == 0
