"""Reading the gateways' `/v1/stats` (internal port; docs/CONTRACTS-internal.md)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import httpx

from gamesync_operator.errors import StatsError
from gamesync_operator.names import INTERNAL_PORT

__all__ = [
    "PodStats",
    "StatsResolver",
    "gather_stats",
    "pod_base_url",
    "read_stats",
    "request_shed",
]

#: Maps a Pod object to the base URL of its internal port, or None if it has no address yet.
#: Tests replace it to point at fake gateways on loopback.
StatsResolver = Callable[[Mapping[str, Any]], str | None]


@dataclass(frozen=True)
class PodStats:
    pod: str
    connections: int
    kids: frozenset[str]
    draining: bool
    runtime_hash: str | None
    runtime_valid: bool
    shedding: bool = False  # moving connections away on the operator's request


def pod_base_url(pod: Mapping[str, Any]) -> str | None:
    """http://<podIP>:9000, the address the operator reaches a gateway at in a cluster."""
    ip = (pod.get("status") or {}).get("podIP")
    if not ip:
        return None
    host = f"[{ip}]" if ":" in ip else ip  # IPv6 literals are bracketed in URLs
    return f"http://{host}:{INTERNAL_PORT}"


def _parse(pod: str, payload: Any) -> PodStats:
    if not isinstance(payload, dict):
        raise StatsError(f"{pod}: /v1/stats is not a JSON object")
    connections = payload.get("connections")
    kids = payload.get("kids")
    if not isinstance(connections, int) or isinstance(connections, bool) or connections < 0:
        raise StatsError(f"{pod}: /v1/stats connections is not a count")
    if not isinstance(kids, list) or not all(isinstance(k, str) for k in kids):
        raise StatsError(f"{pod}: /v1/stats kids is not a list of strings")
    runtime = payload.get("runtimeConfig") or {}
    shed = payload.get("shed")
    return PodStats(
        pod=pod,
        connections=connections,
        kids=frozenset(kids),
        draining=bool(payload.get("draining")),
        runtime_hash=runtime.get("hash") if isinstance(runtime, dict) else None,
        runtime_valid=bool(runtime.get("valid", True)) if isinstance(runtime, dict) else True,
        shedding=isinstance(shed, dict) and bool(shed.get("inProgress")),
    )


async def read_stats(client: httpx.AsyncClient, pod: str, base_url: str) -> PodStats:
    """One pod's stats; StatsError for any failure (timeouts come from the client)."""
    try:
        response = await client.get(f"{base_url}/v1/stats")
        response.raise_for_status()
        payload = response.json()
    except (httpx.HTTPError, ValueError) as exc:
        raise StatsError(f"{pod}: {type(exc).__name__}") from exc
    return _parse(pod, payload)


async def gather_stats(
    client: httpx.AsyncClient, pods: Sequence[Mapping[str, Any]], resolve: StatsResolver
) -> dict[str, PodStats | StatsError]:
    """Stats of each pod, concurrently; a failing pod maps to its StatsError."""

    async def one(pod: Mapping[str, Any]) -> PodStats | StatsError:
        name = pod["metadata"]["name"]
        base = resolve(pod)
        if base is None:
            return StatsError(f"{name}: no address yet")
        try:
            return await read_stats(client, name, base)
        except StatsError as exc:
            return exc

    results = await asyncio.gather(*(one(p) for p in pods))
    return {p["metadata"]["name"]: r for p, r in zip(pods, results, strict=True)}


async def request_shed(
    client: httpx.AsyncClient,
    pod: str,
    base_url: str,
    connections: int,
    seconds: float,
    delay: float,
) -> None:
    """Ask one gateway to move `connections` away over `seconds`, starting in `delay` seconds.

    StatsError when the gateway refuses (draining, broker outage, already shedding) or fails.
    """
    body = {"connections": connections, "seconds": seconds, "delaySeconds": delay}
    try:
        response = await client.post(f"{base_url}/v1/shed", json=body)
    except httpx.HTTPError as exc:
        raise StatsError(f"{pod}: {type(exc).__name__}") from exc
    if response.status_code != 202:
        try:
            why = str(response.json().get("error"))
        except (ValueError, AttributeError):
            why = f"HTTP {response.status_code}"
        raise StatsError(f"{pod}: shed refused: {why}")
