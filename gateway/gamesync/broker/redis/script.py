"""The Redis layout every publisher shares: key and channel names, and the publish script.

Pure (no I/O, no `redis` import): the contract in DESIGN §3 and docs/publishing.md.
"""

from __future__ import annotations

import hashlib
from importlib import resources

__all__ = [
    "PUBLISH_SCRIPT",
    "PUBLISH_SCRIPT_SHA1",
    "channel_name",
    "game_of_channel",
    "latest_key",
    "script_keys",
    "version_key",
]

#: The one publish script (`gamesync/lua/publish.lua`), byte for byte as Redis hashes it.
PUBLISH_SCRIPT: bytes = resources.files("gamesync").joinpath("lua/publish.lua").read_bytes()
#: What EVALSHA takes; documented in docs/publishing.md for publishers in other languages.
PUBLISH_SCRIPT_SHA1: str = hashlib.sha1(PUBLISH_SCRIPT, usedforsecurity=False).hexdigest()

_CHANNEL_PREFIX = b"game:{"


def channel_name(game_id: int) -> str:
    """`game:{42}`: the hash tag puts the channel in its keys' cluster slot."""
    return f"game:{{{game_id}}}"


def latest_key(game_id: int) -> str:
    """`game:{42}:latest`: the newest envelope's JSON exactly as published, with a TTL."""
    return f"game:{{{game_id}}}:latest"


def version_key(game_id: int) -> str:
    """`game:{42}:version`: that envelope's version as a decimal string, same TTL (the script's)."""
    return f"game:{{{game_id}}}:version"


def script_keys(game_id: int) -> tuple[str, str, str]:
    """KEYS of the publish script, in order: latest key, channel, version key."""
    return latest_key(game_id), channel_name(game_id), version_key(game_id)


def game_of_channel(channel: bytes) -> int | None:
    """The game id a `game:{ID}` channel names, or None for any other channel."""
    if not channel.startswith(_CHANNEL_PREFIX) or not channel.endswith(b"}"):
        return None
    digits = channel[len(_CHANNEL_PREFIX) : -1]
    return int(digits) if digits.isdigit() else None
