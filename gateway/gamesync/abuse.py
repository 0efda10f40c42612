"""The abuse penalty: a client address whose connections keep being ended for abuse is refused.

Every budget a connection has (frames, fragments, messages, a head's size and time) ends that
connection, but an attacker reconnects at once, and each new connection costs the pod a
handshake, a token check and the parsing up to the next budget (issue 12, hostile clients:
~3,000 handshakes in 30 s from one attack kind). So, like fail2ban or nginx's `limit_req`, each
address has a token bucket (`--abuse-burst` closes, refilled at `--abuse-rate` a second): an
offence (`is_offence`) spends a token, and while the bucket is empty new connections from the
address are refused with HTTP 429 and `Retry-After` before the pod does any work for them.

What counts is what only a misbehaving client causes: a frame or message over a budget or the
protocol (1002, 1007, 1008, 1009), a token that fails verification when the connection
authenticates (4401 `unauthorized`; an expired one is an honest client's stale token), and a
request head refused for its size or time (408, 414, 431; only where the peer is the client).
Never: a busy pod (1013), idle or heartbeat closes (4408), a client too slow to read, a token
expiring on a live session, a normal close.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from typing import Any

from gamesync.protocol import Close
from gamesync.ratelimit import KeyedBuckets

__all__ = [
    "ABUSE_BURST",
    "ABUSE_RATE",
    "OFFENCE_CLOSES",
    "OFFENCE_STATUSES",
    "AbusePenalty",
    "client_address",
    "is_offence",
]

#: Offences an address may commit at once, and per second after that (the defaults of
#: `--abuse-burst` and `--abuse-rate`): an honest client is closed like this once in a long
#: while (a bug, a proxy's mangled frame); an attacker is closed so every few milliseconds.
ABUSE_BURST = 10
ABUSE_RATE = 0.2

#: Close codes the server sends for what a client sent: over the protocol or a budget.
OFFENCE_CLOSES = frozenset({Close.PROTOCOL_ERROR, Close.INVALID_DATA, Close.POLICY, Close.TOO_BIG})
#: HTTP statuses of a request head refused for its size or time (`gamesync.handshake`).
OFFENCE_STATUSES = frozenset({408, 414, 431})
#: The `error` code sent with a 4401 for a token that failed verification (not `token_expired`).
_REFUSED_CREDENTIAL = "unauthorized"


def is_offence(code: int, *, authenticated: bool, error: str | None = None) -> bool:
    """The server's close `code` (after an `error` frame with code `error`, if any) ended the
    connection for abuse: see the module docstring."""
    if code in OFFENCE_CLOSES:
        return True
    return code == Close.UNAUTHORIZED and not authenticated and error == _REFUSED_CREDENTIAL


def client_address(scope: Mapping[str, Any], header: str | None) -> str:
    """The client's address: the last entry of a trusted proxy's header, else the peer's.

    The last entry is the one the proxy in front of us appended; earlier ones came from the
    client and prove nothing. Without a configured header the peer is the client (or the proxy).
    """
    if header is not None:
        wanted = header.encode("latin-1")
        value = b""
        for name, raw in scope.get("headers", ()):
            if name.lower() == wanted:
                value = raw  # the last such header, should the proxy have added its own
        entry = value.rpartition(b",")[2].strip()
        if entry:
            return entry.decode("latin-1")[:64]
    client = scope.get("client")
    return str(client[0]) if client else ""


class AbusePenalty:
    """Offences per client address, and the refusal of an address that spent its budget.

    `header`: the trusted proxy header naming the client (`--client-address-header`), or None
    when the peer is the client. A head refused before it parsed has no header to name the
    client by, so it counts only when the peer is the client.
    """

    __slots__ = ("_buckets", "header", "offences")

    def __init__(
        self,
        rate: float,
        burst: int,
        clock: Callable[[], float],
        *,
        header: str | None = None,
        max_addresses: int = 10_000,
    ) -> None:
        self._buckets = KeyedBuckets(rate, burst, clock, max_keys=max_addresses)
        self.header = header
        #: offences counted (a metric)
        self.offences = 0

    def offended(self, address: str) -> None:
        """Count an offence by `address` (see `is_offence`)."""
        if address:
            self.offences += 1
            self._buckets.spend(address)

    def head_refused(self, status: int, peer: str) -> None:
        """A request head from `peer` was refused with `status` before any session existed."""
        if status in OFFENCE_STATUSES and self.header is None:
            self.offended(peer)

    def refusal(self, address: str) -> int | None:
        """None to let `address` in; else the whole seconds until it may try again."""
        wait = self._buckets.limited(address)
        return None if wait <= 0 else max(1, math.ceil(wait))

    @property
    def penalised(self) -> int:
        """Addresses refused at this moment."""
        return self._buckets.count_limited()
