"""Reading gateways' /v1/stats: real HTTP on loopback, failures become StatsError."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import aiohttp.web
import httpx
import pytest

from gamesync_operator.errors import StatsError
from gamesync_operator.stats import gather_stats, pod_base_url

GOOD = {
    "pod": "gw-a",
    "version": "0.1.0",
    "ready": True,
    "draining": False,
    "connections": 12,
    "subscriptions": 30,
    "games": 8,
    "deliveries": 12345,
    "kids": ["k-1", "k-2"],
    "runtimeConfig": {"hash": "sha256:ab", "valid": True, "error": None},
}


@pytest.fixture
async def gateway() -> AsyncIterator[str]:
    release = asyncio.Event()

    async def good(_: aiohttp.web.Request) -> aiohttp.web.Response:
        return aiohttp.web.json_response(GOOD)

    async def bad(_: aiohttp.web.Request) -> aiohttp.web.Response:
        return aiohttp.web.json_response({**GOOD, "connections": "many"})

    async def slow(_: aiohttp.web.Request) -> aiohttp.web.Response:
        await release.wait()  # never answers within the client's timeout
        return aiohttp.web.json_response(GOOD)

    async def broken(_: aiohttp.web.Request) -> aiohttp.web.Response:
        return aiohttp.web.Response(status=500, text="boom")

    app = aiohttp.web.Application()
    for name, handler in {"good": good, "bad": bad, "slow": slow, "broken": broken}.items():
        app.router.add_get(f"/{name}/v1/stats", handler)
    runner = aiohttp.web.AppRunner(app, shutdown_timeout=0.1)
    await runner.setup()
    site = aiohttp.web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    yield f"http://127.0.0.1:{port}"
    release.set()
    await runner.cleanup()


def _pod(name: str, ip: str | None = "10.0.0.7") -> dict[str, Any]:
    return {"metadata": {"name": name}, "status": {"podIP": ip} if ip else {}}


def test_pod_base_url_is_the_internal_port_on_the_pod_ip() -> None:
    assert pod_base_url(_pod("a")) == "http://10.0.0.7:9000"
    assert pod_base_url(_pod("a", "fd00::7")) == "http://[fd00::7]:9000"
    assert pod_base_url(_pod("a", None)) is None


async def test_gather_reads_good_pods_and_reports_each_failure(gateway: str) -> None:
    pods = [_pod(n) for n in ("good", "bad", "slow", "broken", "nowhere")]

    def resolve(pod: Any) -> str | None:
        name = pod["metadata"]["name"]
        return None if name == "nowhere" else f"{gateway}/{name}"

    async with httpx.AsyncClient(timeout=0.3) as client:
        results = await gather_stats(client, pods, resolve)
    good = results["good"]
    assert not isinstance(good, StatsError)
    assert good.connections == 12
    assert good.kids == frozenset({"k-1", "k-2"})
    assert good.runtime_hash == "sha256:ab"
    assert good.runtime_valid is True
    for name in ("bad", "slow", "broken", "nowhere"):
        assert isinstance(results[name], StatsError), name
    assert "connections" in str(results["bad"])
