"""GameSync's own tuning carried by a Redis `--broker` URL (pure: no I/O, no `redis` import)."""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from gamesync.errors import ConfigError

__all__ = ["BrokerOptions", "split_broker_url"]


@dataclass(frozen=True, slots=True)
class BrokerOptions:
    """Tuning a `--broker` URL may carry as query parameters (`?probe_interval=2`).

    They are read here, validated once, and removed before the URL reaches redis-py.
    """

    #: seconds between probes (publish to this pod's probe channel, expect it back)
    probe_interval: float = 5.0
    #: seconds a probe may take before the subscription is declared deaf and rebuilt
    probe_timeout: float = 2.0
    #: reconnect backoff (seconds): the full-jitter window starts here and doubles per failure
    reconnect_base: float = 0.2
    #: longest reconnect delay (seconds). Small on purpose: a gateway without its pub/sub
    #: link serves nothing new, and with full jitter the first try after Redis returns comes
    #: up to one cap later (a 5 s cap made recovery take 2-5 s; the bound is 2 s). Retrying
    #: costs Redis one connect per pod per 0.5 s on average during an outage: nothing.
    reconnect_cap: float = 1.0
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
