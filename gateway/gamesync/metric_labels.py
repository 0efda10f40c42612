"""The bounded label values of the gateway's labelled counters, and the close-code buckets.

Every value listed here is exported as 0 from start-up (`GatewayMetrics`), so that `rate()` and
`increase()` count the first event of each kind: a series that appears with its first event
has no earlier sample to compare with. A value missing here still counts when it happens; it
just starts at its first event (tests/gateway/test_metric_labels.py keeps the lists complete).
"""

from __future__ import annotations

from gamesync.framing import Framing
from gamesync.protocol import Close

__all__ = [
    "AUTH_ERRORS",
    "AUTH_FAILURE_REASONS",
    "BACKGROUND_TASKS",
    "CLIENT",
    "CLIENT_CLOSE_CODES",
    "HANDSHAKE_REFUSALS",
    "HTTP_PUBLISH_RESULTS",
    "PUBLISH_RESULTS",
    "SERVER_CLOSES",
    "TOKEN_CACHE_RESULTS",
    "TRANSPORTS",
    "close_code_label",
]

#: `transport` of the connection metrics (`gamesync_connections`, `gamesync_closes_total`, ...).
TRANSPORTS = tuple(framing.value for framing in Framing)

#: The `reason` of a close the client started (the server's closes carry their own reason).
CLIENT = "client"

#: Close codes exported as they are when a client sends them: RFC 6455 §7.4.1's codes that can
#: reach us (1005 and 1006 are what the socket reports for a close without code or frame).
_RFC_CODES = frozenset(
    {1000, 1001, 1002, 1003, 1005, 1006, 1007, 1008, 1009, 1010, 1011, 1012, 1013, 1014}
)
_SERVER_CODES = frozenset(int(code) for code in Close)


def close_code_label(code: int, reason: str) -> str:
    """The `code` label of a close: the server's codes as they are, a client's 3xxx/4xxx bucketed.

    A client may close with any code in 3000-4999 (RFC 6455 §7.4.2); one series per code would
    be up to 2,000 per pod, so those become `client_3xxx` / `client_4xxx`.
    """
    if reason != CLIENT and code in _SERVER_CODES:
        return str(code)
    if code in _RFC_CODES:
        return str(code)
    if 3000 <= code <= 3999:
        return "client_3xxx"
    if 4000 <= code <= 4999:
        return "client_4xxx"
    return "client_other"


#: Every `code` label a client-started close can have.
CLIENT_CLOSE_CODES = (
    *(str(code) for code in sorted(_RFC_CODES)),
    "client_3xxx",
    "client_4xxx",
    "client_other",
)

#: The messages of `AuthError` (gamesync.keys, gamesync.keystore): the `reason` of an auth
#: failure and of its 4401 close. `token lacks the X claim` names a claim PyJWT found missing:
#: the required `exp` and `sub`, or `aud`/`iss` when an audience/issuer is configured.
AUTH_ERRORS = (
    "no keys loaded",
    "token too large",
    "malformed token",
    "token algorithm not allowed",
    "unknown key id",
    "token has no key id",
    "token algorithm does not match its key",
    "token expired",
    "token not yet valid",
    "wrong audience",
    "wrong issuer",
    *(f"token lacks the {claim} claim" for claim in ("exp", "iat", "sub", "aud", "iss")),
    "invalid token",
    "the sub claim must be a non-empty string",
    "the exp claim must be a number",
    "the iat claim must be a number",
    "token lifetime too long",
    "the games claim must be a list of game ids",
)

#: `gamesync_auth_failures_total{reason}`.
AUTH_FAILURE_REASONS = (
    *AUTH_ERRORS,
    "missing",
    "user changed",
    "token expired on a live connection",
    "signing key revoked on a live connection",
)

#: `gamesync_closes_total{code, reason, transport}` of the closes the server starts
#: (gamesync.session, gamesync.heartbeat, the drain).
SERVER_CLOSES: tuple[tuple[Close, str], ...] = (
    (Close.TRY_AGAIN_LATER, "pod full, try another"),
    (Close.TRY_AGAIN_LATER, "too many unauthenticated connections"),
    (Close.TRY_AGAIN_LATER, "too many unauthenticated connections from this address"),
    (Close.TRY_AGAIN_LATER, "admissions paced, retry later"),
    (Close.TRY_AGAIN_LATER, "client too slow"),
    (Close.TRY_AGAIN_LATER, "authorization unavailable"),
    (Close.TOO_MANY_CONNECTIONS, "too many connections for this user"),
    (Close.INTERNAL, "internal error"),
    (Close.UNAUTHORIZED, "missing token"),
    (Close.UNAUTHORIZED, "missing token: authenticate first"),
    (Close.UNAUTHORIZED, "a renewed token must be for the same user"),
    *((Close.UNAUTHORIZED, message) for message in AUTH_ERRORS),
    (Close.UNAUTHORIZED, "signing key revoked"),
    (Close.UNSUPPORTED_DATA, "binary frames are not supported"),
    (Close.POLICY, "too many bad messages"),
    (Close.FORBIDDEN, "forbidden"),
    (Close.TIMEOUT, "heartbeat timeout"),
    (Close.TIMEOUT, "idle: no subscription"),
    (Close.DRAINING, "draining"),
    (Close.DRAINING, "rebalancing"),
)

#: `gamesync_handshakes_refused_total{reason, transport}`: upgrades (websocket) and streams
#: (SSE) refused before a session exists; before the request head is complete (the transport
#: is not known yet, counted as websocket): `too_large` (414, 431), `timeout` (408),
#: `pending_full` (503: stalled heads fill the unauthenticated cap), `penalised` (429: the
#: address is penalised for abuse, `gamesync.abuse`), `malformed`; `wrong_shard`
#: (a game-affine path naming another shard: 4421, or 421 for SSE).
HANDSHAKE_REFUSALS = (
    "origin",
    "draining",
    "wrong_shard",
    "too_large",
    "timeout",
    "pending_full",
    "penalised",
    "malformed",
)

#: `gamesync_published_total{result}`: every publish through this pod (HTTP and `--demo`).
PUBLISH_RESULTS = ("published", "stale")

#: `gamesync_http_publishes_total{result}`: requests to `POST /v1/games/{id}/snapshots`.
HTTP_PUBLISH_RESULTS = (
    "published",
    "stale",
    "invalid",
    "too_large",
    "unauthorized",
    "disabled",
    "unavailable",
    "rate_limited",
)

#: `gamesync_token_cache_lookups_total{result}`: a verification answered from the verified-token
#: cache (`hit`) or checked afresh (`miss`, failures included).
TOKEN_CACHE_RESULTS = ("hit", "miss")

#: `gamesync_task_restarts_total{task}`: the gateway's supervised background tasks (the Redis
#: broker's per-node `redis-pubsub-<node>` keepers and cluster watcher appear when they restart).
BACKGROUND_TASKS = ("sweeper", "keys-watcher", "runtime-config-watcher", "redis-probe")
