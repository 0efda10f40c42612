"""Pure parts of the Redis fan-out: names, the publish script, URL options, backoff, counters.

Nothing here does I/O or imports `redis`; `gamesync.broker.redis` and `gamesync.publisher`
build on it (DESIGN §3).
"""

from __future__ import annotations

import hashlib
import random
from dataclasses import dataclass, field
from importlib import resources
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from gamesync.errors import ConfigError
from gamesync.histogram import LatencyHistogram

__all__ = [
    "LAG_BUCKETS",
    "PUBLISH_SCRIPT",
    "PUBLISH_SCRIPT_SHA1",
    "BrokerOptions",
    "BrokerStats",
    "backoff_delay",
    "channel_name",
    "game_of_channel",
    "latest_key",
    "split_broker_url",
]

#: The one publish script (`gamesync/lua/publish.lua`), byte for byte as Redis hashes it.
PUBLISH_SCRIPT: bytes = resources.files("gamesync").joinpath("lua/publish.lua").read_bytes()
#: What EVALSHA takes; documented in docs/publishing.md for publishers in other languages.
PUBLISH_SCRIPT_SHA1: str = hashlib.sha1(PUBLISH_SCRIPT, usedforsecurity=False).hexdigest()

_CHANNEL_PREFIX = b"game:{"

#: Upper bounds (seconds) of the publish→receive lag histogram the brokers keep.
LAG_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)


def channel_name(game_id: int) -> str:
    """`game:{42}`: the hash tag puts the channel in its latest key's cluster slot."""
    return f"game:{{{game_id}}}"


def latest_key(game_id: int) -> str:
    """`game:{42}:latest`: the newest envelope, with a TTL."""
    return f"game:{{{game_id}}}:latest"


def game_of_channel(channel: bytes) -> int | None:
    """The game id a `game:{ID}` channel names, or None for any other channel."""
    if not channel.startswith(_CHANNEL_PREFIX) or not channel.endswith(b"}"):
        return None
    digits = channel[len(_CHANNEL_PREFIX) : -1]
    return int(digits) if digits.isdigit() else None


def backoff_delay(attempt: int, *, base: float, cap: float, rng: random.Random) -> float:
    """Full-jitter exponential backoff: uniform in [base/2, min(cap, base * 2^attempt)]."""
    ceiling = min(cap, base * (2 ** min(attempt, 16)))
    return rng.uniform(min(base / 2, ceiling), ceiling)


@dataclass(frozen=True, slots=True)
class BrokerOptions:
    """Tuning a `--broker` URL may carry as query parameters (`?probe_interval=2`).

    They are read here, validated once, and removed before the URL reaches redis-py.
    """

    #: seconds between probes (publish to this pod's probe channel, expect it back)
    probe_interval: float = 5.0
    #: seconds a probe may take before the subscription is declared deaf and rebuilt
    probe_timeout: float = 2.0
    #: first reconnect delay (seconds); doubles per failed attempt, with full jitter
    reconnect_base: float = 0.2
    #: longest reconnect delay (seconds)
    reconnect_cap: float = 5.0
    #: deadline (seconds) for a command, a connect, or a subscription to be confirmed
    command_timeout: float = 2.0
    #: channels per SUBSCRIBE/SSUBSCRIBE when re-subscribing after a reconnect
    resubscribe_batch: int = 512

    @classmethod
    def from_query(cls, query: dict[str, str]) -> BrokerOptions:
        floats = ("probe_interval", "probe_timeout", "reconnect_base", "reconnect_cap")
        values: dict[str, float | int] = {}
        for name, text in query.items():
            try:
                if name in (*floats, "command_timeout"):
                    values[name] = float(text)
                elif name == "resubscribe_batch":
                    values[name] = int(text)
                else:  # pragma: no cover - from_query only gets our own names
                    raise ConfigError(f"unknown broker option {name!r}")
            except ValueError as exc:
                raise ConfigError(f"broker option {name} must be a number, got {text!r}") from exc
            if values[name] <= 0:
                raise ConfigError(f"broker option {name} must be positive")
        return cls(**values)  # type: ignore[arg-type]


_OPTION_NAMES = frozenset(BrokerOptions.__dataclass_fields__)


def split_broker_url(url: str) -> tuple[str, BrokerOptions]:
    """Separate GameSync's own query options from what redis-py is given."""
    parts = urlsplit(url)
    ours: dict[str, str] = {}
    theirs: list[tuple[str, str]] = []
    for name, value in parse_qsl(parts.query, keep_blank_values=True):
        if name in _OPTION_NAMES:
            ours[name] = value
        else:
            theirs.append((name, value))
    options = BrokerOptions.from_query(ours)
    return urlunsplit(parts._replace(query=urlencode(theirs))), options


@dataclass(slots=True)
class BrokerStats:
    """Counters a Redis broker keeps (plain numbers, read at scrape time)."""

    #: games this pod is subscribed to now (gauge)
    subscriptions: int = 0
    #: pub/sub connections re-established after losing them
    reconnects: int = 0
    #: probes that did not come back in time, or could not be sent
    probe_failures: int = 0
    #: publishes through this broker refused by the script as not newer
    stale_publishes: int = 0
    #: publishes through this broker that went out
    publishes: int = 0
    #: envelopes received from Redis and handed to the hub
    received: int = 0
    #: channel messages that were not valid envelopes (logged, dropped)
    malformed: int = 0
    #: latest keys re-read after (re)subscribing
    resyncs: int = 0
    #: publish→receive lag from `publishedAt`, per LAG_BUCKETS bound (+Inf last)
    lag: LatencyHistogram = field(default_factory=lambda: LatencyHistogram(LAG_BUCKETS))

    def observe_lag(self, seconds: float) -> None:
        self.lag.observe(seconds)

    @property
    def lag_buckets(self) -> list[int]:
        return self.lag.counts

    @property
    def lag_count(self) -> int:
        return self.lag.count

    @property
    def lag_sum(self) -> float:
        return self.lag.sum
