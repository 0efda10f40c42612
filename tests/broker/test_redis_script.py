"""The Redis layout and the publish script: names, the script's identity, and its exact,
atomic publish-if-newer on a real redis-server (versions past 2^53 included)."""

from __future__ import annotations

import asyncio
import hashlib
import json
import random
import re
from importlib import resources
from pathlib import Path

import pytest
import redis
import redis.asyncio as aioredis
from redis.crc import key_slot

from gamesync.broker.redis import PUBLISH_SCRIPT, PUBLISH_SCRIPT_SHA1
from gamesync.broker.redis.script import (
    channel_name,
    game_of_channel,
    latest_key,
    script_keys,
    version_key,
)
from redis_servers import RedisServer

DOCS = Path(__file__).resolve().parents[2] / "docs" / "publishing.md"
TOP = 2**63 - 1


def test_key_and_channel_names_carry_the_game_id_as_hash_tag() -> None:
    assert channel_name(42) == "game:{42}"
    assert latest_key(42) == "game:{42}:latest"
    assert version_key(42) == "game:{42}:version"
    assert script_keys(42) == ("game:{42}:latest", "game:{42}", "game:{42}:version")
    assert len({key_slot(name.encode()) for name in script_keys(42)}) == 1  # one cluster slot
    assert game_of_channel(b"game:{42}") == 42
    assert game_of_channel(b"game:{x}") is None
    assert game_of_channel(b"gamesync:probe:{abc}") is None


def test_the_documented_sha1_is_the_shipped_script_bytes() -> None:
    body = resources.files("gamesync").joinpath("lua/publish.lua").read_bytes()
    assert hashlib.sha1(body).hexdigest() == PUBLISH_SCRIPT_SHA1
    assert body.isascii()  # no encoding question for other languages
    assert PUBLISH_SCRIPT_SHA1 in DOCS.read_text()


def run(client: redis.Redis, game: int, version: int | str, body: str | None = None) -> int:
    """EVALSHA the script for `game` (3 keys) with a TTL of 60 s; the reply (1 or 0)."""
    raw = body if body is not None else json.dumps({"gameId": game, "version": version})
    return int(client.evalsha(PUBLISH_SCRIPT_SHA1, 3, *script_keys(game), raw, version, 60))


@pytest.fixture
def client(redis_server: RedisServer) -> redis.Redis:
    client = redis_server.client()
    assert client.script_load(PUBLISH_SCRIPT.decode()) == PUBLISH_SCRIPT_SHA1
    return client


@pytest.mark.redis
def test_the_script_answers_to_its_documented_sha1(client: redis.Redis) -> None:
    raw = json.dumps({"gameId": 601, "version": 4, "snapshot": {}})
    assert run(client, 601, 4, raw) == 1
    assert run(client, 601, 4, raw) == 0  # same version: stale
    assert run(client, 601, 3, "older") == 0
    assert client.get("game:{601}:latest") == raw.encode()  # byte for byte, never re-encoded
    assert client.get("game:{601}:version") == b"4"
    assert 0 < client.ttl("game:{601}:version") <= client.ttl("game:{601}:latest") <= 60


@pytest.mark.redis
@pytest.mark.parametrize(
    ("older", "newer"),
    [
        (2**53 + 1, 2**53 + 2),  # the same double: a numeric compare calls the newer one stale
        (2**53, 2**53 + 1),
        (TOP - 1, TOP),
        (99, 100),  # more digits is larger, whatever the first digit says
        (0, 1),
    ],
)
def test_versions_are_compared_exactly_up_to_2_63_minus_1(
    client: redis.Redis, older: int, newer: int
) -> None:
    game = 700
    assert run(client, game, older) == 1
    assert run(client, game, newer) == 1
    assert run(client, game, older) == 0
    assert run(client, game, newer) == 0
    assert client.get(version_key(game)) == str(newer).encode()
    assert json.loads(client.get(latest_key(game)) or b"")["version"] == newer


@pytest.mark.redis
def test_a_version_has_one_spelling_and_stays_in_range(client: redis.Redis) -> None:
    assert run(client, 701, "0017") == 1
    assert client.get(version_key(701)) == b"17"
    assert run(client, 701, "17") == 0
    assert run(client, 701, "018") == 1
    for bad, reason in [
        (str(TOP + 1), "at most 2^63-1"),
        ("1" + "0" * 30, "at most 2^63-1"),
        ("-1", "non-negative integer"),
        ("1.5", "non-negative integer"),
        ("", "non-negative integer"),
    ]:
        with pytest.raises(redis.ResponseError, match=re.escape(reason)):
            run(client, 702, bad)
    assert client.exists(latest_key(702), version_key(702)) == 0  # a refused call writes nothing


@pytest.mark.redis
def test_a_latest_key_from_the_previous_script_is_compared_once_then_indexed(
    client: redis.Redis,
) -> None:
    # the previous script stored only the envelope; its version is read from it the first time
    client.set(latest_key(703), json.dumps({"gameId": 703, "version": 17}), ex=60)
    assert run(client, 703, 17) == 0
    assert run(client, 703, 16) == 0
    assert run(client, 703, 18) == 1
    assert client.get(version_key(703)) == b"18"
    client.set(latest_key(704), b"not json", ex=60)  # unreadable: replaced, never blocking
    assert run(client, 704, 1) == 1


@pytest.mark.redis
def test_without_a_latest_envelope_any_version_goes_out(client: redis.Redis) -> None:
    assert run(client, 705, 9) == 1
    client.delete(latest_key(705))  # expired, or deleted by an operator to reset the game
    assert run(client, 705, 1) == 1
    assert client.get(version_key(705)) == b"1"


@pytest.mark.redis
async def test_concurrent_publishers_past_2_53_send_only_increasing_versions(
    redis_server: RedisServer,
) -> None:
    """Eight connections race 200 versions (each twice, scrambled) just above 2^53: what reaches
    the channel strictly increases, and the newest is what stays stored."""
    game, base = 706, 2**53
    versions = [base + v for v in range(1, 201)] * 2
    random.Random(3).shuffle(versions)
    listener = aioredis.Redis(port=redis_server.port, protocol=2)
    pubsub = listener.pubsub()
    await pubsub.subscribe(channel_name(game))
    await pubsub.get_message(timeout=1)  # the subscribe confirmation
    publishers = [aioredis.Redis(port=redis_server.port, protocol=2) for _ in range(8)]
    await publishers[0].script_load(PUBLISH_SCRIPT.decode())
    try:

        async def publish(client: aioredis.Redis, version: int) -> int:
            raw = json.dumps({"gameId": game, "version": version})
            return int(
                await client.evalsha(PUBLISH_SCRIPT_SHA1, 3, *script_keys(game), raw, version, 60)
            )

        results = await asyncio.gather(
            *(publish(publishers[i % 8], v) for i, v in enumerate(versions))
        )
        received: list[int] = []
        while len(received) < sum(results):
            message = await pubsub.get_message(ignore_subscribe_messages=True, timeout=5)
            assert message is not None, f"only {len(received)} of {sum(results)} arrived"
            received.append(json.loads(message["data"])["version"])
        assert received == sorted(set(received))
        assert received[-1] == base + 200
        assert int(await listener.get(version_key(game)) or 0) == base + 200
    finally:
        await pubsub.aclose()
        for client in (listener, *publishers):
            await client.aclose()
