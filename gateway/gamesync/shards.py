"""Game-affine placement: which gateway shard serves a game (DESIGN §2 "Game-affine placement").

Pure. The JS and Python clients compute the same function; so does the bench.

`shard_of(game_id, K) = game_id mod K`. Why not a hash, or a consistent hash: game ids are
integers the backend hands out (sequentially, in practice), so the remainder spreads them
evenly already; it is exact in every language a client is written in (JS computes it on a
BigInt beyond 2^53); and the one thing consistent hashing buys, fewer games moving when K
changes, buys nothing here, because changing K rolls every shard's pods (their flags change),
so every connection reconnects anyway.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["WRONG_SHARD_STATUS", "ShardIdentity", "shard_of"]

#: The HTTP status an event stream for the wrong shard is refused with (RFC 9110 §15.5.20,
#: 421 Misdirected Request: "a request directed at a server unable to produce a response").
#: A websocket is closed with `protocol.Close.WRONG_SHARD` (4421) instead, which a browser can see.
WRONG_SHARD_STATUS = 421


def shard_of(game_id: int, shards: int) -> int:
    """The shard (0 ≤ s < `shards`) whose pods serve `game_id`'s game-affine connections."""
    if shards < 1:
        raise ValueError(f"the shard count must be at least 1, not {shards}")
    if game_id < 0:
        raise ValueError(f"a game id is non-negative, not {game_id}")
    return game_id % shards


@dataclass(frozen=True, slots=True)
class ShardIdentity:
    """This gateway's place in the fleet: shard `index` of `count` (`0 ≤ index < count`)."""

    index: int = 0
    count: int = 1

    def __post_init__(self) -> None:
        if self.count < 1 or not 0 <= self.index < self.count:
            raise ValueError(f"shard {self.index} of {self.count}: want 0 ≤ shard < shards")

    def refusal(self, shard: int, game_id: int) -> str | None:
        """Why `/ws/s/{shard}/games/{game_id}` is not served here, or None if it is."""
        owner = shard_of(game_id, self.count)
        if shard == self.index and shard == owner:
            return None
        # A close reason is at most 123 bytes: this stays well under.
        return (
            f"wrong shard: game {game_id} is on shard {owner} of {self.count}, this is {self.index}"
        )

    def announcement(self) -> dict[str, int]:
        """`GET /v1/shards`: what a client needs to compute a game's path before connecting."""
        return {"shards": self.count, "shard": self.index}
