"""Snapshot bodies for the benchmarks: about 2 KB of JSON with a publish timestamp ``t``.

``t`` is CLOCK_MONOTONIC (``time.monotonic()``), which every process on the machine shares,
so a client subtracts it from its own receive time to get publish→client latency.
"""

from __future__ import annotations

import json
import random

__all__ = ["SnapshotFactory", "envelope_json", "server_snapshot_message"]

_VARIANTS = 64


class SnapshotFactory:
    """Pre-builds 64 different bodies (so compression could not cheat) of about ``size`` bytes."""

    def __init__(self, size: int = 2048, seed: int = 7) -> None:
        rng = random.Random(seed)
        alphabet = "abcdefghijklmnopqrstuvwxyz0123456789"
        self._tails: list[str] = []
        for i in range(_VARIANTS):
            cards = [f"{rng.choice('SHDC')}{rng.randint(1, 13)}" for _ in range(13)]
            filler = "".join(rng.choice(alphabet) for _ in range(max(0, size - 160)))
            tail = json.dumps({"round": i, "hand": cards, "board": filler}, separators=(",", ":"))
            self._tails.append(tail[1:])  # without the opening brace

    def data(self, t: float, version: int) -> str:
        """The snapshot ``data`` JSON text, with ``t`` first so a reader finds it quickly."""
        return f'{{"t":{t:.6f},' + self._tails[version % _VARIANTS]


def envelope_json(game_id: int, version: int, data: str, published_at: float | None = None) -> str:
    """The publish envelope of DESIGN §3, with ``publishedAt`` (Unix seconds) when given."""
    stamp = f',"publishedAt":{published_at:.6f}' if published_at is not None else ""
    return f'{{"gameId":{game_id},"version":{version}{stamp},"snapshot":{data}}}'


def server_snapshot_message(game_id: int, version: int, data: str) -> str:
    """The protocol v1 ``snapshot`` message a server sends (used by the raw baseline)."""
    return (
        f'{{"type":"snapshot","version":1,"gameId":{game_id},"gameVersion":{version},'
        f'"data":{data}}}'
    )
