"""Reading the gateway's own publish→send histogram from its /metrics endpoint.

The gateway observes ``gamesync_publish_to_send_seconds`` (envelope ``publishedAt`` → frames
written) once per fan-out. The difference of two scrapes gives the server-side view of a run:
it covers publisher → Redis → gateway → write, but not the kernel, the client or a starved
load process, so it separates the gateway's tail from load-side noise.
"""

from __future__ import annotations

import asyncio
import re
from typing import Any

__all__ = ["histogram_delta", "scrape_histogram"]

HISTOGRAM = "gamesync_publish_to_send_seconds"
_BUCKET = re.compile(HISTOGRAM + r'_bucket\{[^}]*le="([^"]+)"[^}]*\} ([0-9.e+]+)')


async def scrape_histogram(port: int, timeout: float = 5.0) -> dict[float, float]:
    """Cumulative bucket counts {upper bound: count} from ``GET /metrics`` on ``port``."""
    reader, writer = await asyncio.wait_for(asyncio.open_connection("127.0.0.1", port), timeout)
    try:
        writer.write(b"GET /metrics HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
        body = await asyncio.wait_for(reader.read(), timeout)
    finally:
        writer.close()
    buckets: dict[float, float] = {}
    for match in _BUCKET.finditer(body.decode(errors="replace")):
        bound = float("inf") if match.group(1) == "+Inf" else float(match.group(1))
        buckets[bound] = buckets.get(bound, 0.0) + float(match.group(2))
    return buckets


def histogram_delta(
    before: list[dict[float, float]], after: list[dict[float, float]]
) -> dict[str, Any]:
    """Summed over servers: fan-outs, the share within 10 ms, and the p99/p99.9 bucket bounds."""
    total: dict[float, float] = {}
    for b, a in zip(before, after, strict=True):
        for bound, count in a.items():
            total[bound] = total.get(bound, 0.0) + count - b.get(bound, 0.0)
    bounds = sorted(total)
    n = total.get(float("inf"), 0.0)
    if n <= 0:
        return {"fanouts": 0}

    def upper(q: float) -> float | None:
        for bound in bounds:
            if total[bound] >= q * n:
                return None if bound == float("inf") else bound * 1000
        return None

    within_10ms = total.get(0.01, 0.0) / n
    return {
        "fanouts": int(n),
        "within_10ms": round(within_10ms, 5),
        "p99_le_ms": upper(0.99),
        "p999_le_ms": upper(0.999),
    }
