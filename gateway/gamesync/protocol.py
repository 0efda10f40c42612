"""The client protocol (DESIGN §2): client message parsing, server message encoding, framing. Pure.

Version 1 is the websocket protocol with full snapshots; version 2 adds `delta` messages (opt-in
per connection) and the SSE transport's `close` event. A message keeps the `version` of the
protocol that introduced it, so a version-2 connection receives exactly the bytes a version-1
connection does, plus the messages only version 2 has.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from enum import Enum, IntEnum
from types import MappingProxyType
from typing import Any

from gamesync import jsoncodec
from gamesync.errors import ProtocolError
from gamesync.framing import Framing, frame

__all__ = [
    "CLOSE_CLASSES",
    "PROTOCOL_VERSION",
    "Auth",
    "ClientMessage",
    "Close",
    "CloseClass",
    "Ping",
    "Reaction",
    "Subscribe",
    "Unsubscribe",
    "close_class",
    "encode",
    "parse_client_message",
    "snapshot_frame",
]

#: The newest protocol version this server speaks.
PROTOCOL_VERSION = 2

#: Messages introduced after version 1, with the version that introduced them.
_MESSAGE_VERSIONS = {"delta": 2, "close": 2}
_MAX_GAME_ID = 2**63 - 1


class Close(IntEnum):
    """Close codes, RFC 6455 §7.4 plus the 4xxx application range (DESIGN §2)."""

    NORMAL = 1000
    PROTOCOL_ERROR = 1002  # RFC 6455 violated (websockets' parser)
    UNSUPPORTED_DATA = 1003  # binary frame
    INVALID_DATA = 1007  # a text message that is not UTF-8
    POLICY = 1008  # flooding (messages, control frames, fragments), origin
    TOO_BIG = 1009
    INTERNAL = 1011
    DRAINING = 1012  # service restart: reconnect
    TRY_AGAIN_LATER = 1013  # pod full or client too slow
    PROTOCOL_VIOLATION = 4400
    UNAUTHORIZED = 4401
    FORBIDDEN = 4403
    TIMEOUT = 4408  # heartbeat or idle
    WRONG_SHARD = 4421  # a game-affine path for another shard (421 Misdirected Request)
    TOO_MANY_CONNECTIONS = 4429


class Reaction(Enum):
    """What a client does after a close with a given code (the Python and JS clients both)."""

    RECONNECT = "reconnect"  # back off (or follow a `reconnect` hint) and connect again
    RENEW = "renew"  # ask the token provider again and reconnect; stop if that token fails too
    #: heartbeat or idle close: reconnect if a game is wanted, else once one is
    RECONNECT_IF_SUBSCRIBED = "reconnect_if_subscribed"
    STOP = "stop"  # final: the same inputs cannot succeed
    #: learn the shard count again (`GET /v1/shards`) and reconnect at once, once; if refused
    #: again, back off and reconnect as `RECONNECT` does (a fleet changing its shard count)
    RESHARD = "reshard"


@dataclass(frozen=True, slots=True)
class CloseClass:
    """How a close code is treated: the client's reaction, and whether it counts as an error."""

    reaction: Reaction
    error: bool  # in traces and logs; a clean end or a drain is not an error


_CLEAN = CloseClass(Reaction.RECONNECT, error=False)
_FAILED = CloseClass(Reaction.RECONNECT, error=True)

#: Every close code either side uses, classified once; a new code gets its row here. The JS
#: client's constants and DESIGN §2 are checked against this table (tests/gateway).
CLOSE_CLASSES: Mapping[int, CloseClass] = MappingProxyType(
    {
        Close.NORMAL: _CLEAN,
        1001: _CLEAN,  # going away: a client leaving (a browser tab closed); never sent here
        Close.PROTOCOL_ERROR: _FAILED,
        Close.UNSUPPORTED_DATA: _FAILED,
        1005: _CLEAN,
        Close.INVALID_DATA: _FAILED,  # a client's close frame without a code; never sent here
        Close.POLICY: _FAILED,
        Close.TOO_BIG: _FAILED,
        Close.INTERNAL: _FAILED,
        Close.DRAINING: _CLEAN,
        Close.TRY_AGAIN_LATER: _FAILED,
        Close.PROTOCOL_VIOLATION: CloseClass(Reaction.STOP, error=True),
        Close.UNAUTHORIZED: CloseClass(Reaction.RENEW, error=True),
        Close.FORBIDDEN: CloseClass(Reaction.STOP, error=True),
        Close.TIMEOUT: CloseClass(Reaction.RECONNECT_IF_SUBSCRIBED, error=True),
        Close.TOO_MANY_CONNECTIONS: _FAILED,
        Close.WRONG_SHARD: CloseClass(Reaction.RESHARD, error=True),
    }
)


def close_class(code: int) -> CloseClass:
    """The class of `code`; a code not in the table (1006, a client's own 4xxx) is an error."""
    return CLOSE_CLASSES.get(code, _FAILED)


@dataclass(frozen=True, slots=True)
class Subscribe:
    game_id: int


@dataclass(frozen=True, slots=True)
class Unsubscribe:
    game_id: int


@dataclass(frozen=True, slots=True)
class Ping:
    pass


@dataclass(frozen=True, slots=True)
class Auth:
    token: str
    #: protocol 2: the client asks for `delta` messages on this connection
    delta: bool = False


ClientMessage = Subscribe | Unsubscribe | Ping | Auth


def _game_id(doc: dict[str, Any]) -> int:
    value = doc.get("gameId")
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= _MAX_GAME_ID:
        raise ProtocolError("'gameId' must be a non-negative integer")
    return value


def parse_client_message(text: str) -> ClientMessage:
    """Parse one client text frame; raise ProtocolError (answered with bad_request)."""
    try:
        doc = jsoncodec.loads(text.encode())
    except (ValueError, RecursionError) as exc:  # RecursionError: nested too deeply
        raise ProtocolError("malformed JSON") from exc
    if not isinstance(doc, dict):
        raise ProtocolError("a message must be a JSON object")
    kind = doc.get("type")
    if kind == "subscribe":
        return Subscribe(_game_id(doc))
    if kind == "unsubscribe":
        return Unsubscribe(_game_id(doc))
    if kind == "ping":
        return Ping()
    if kind == "auth":
        token = doc.get("token")
        if not isinstance(token, str) or not token:
            raise ProtocolError("'token' must be a non-empty string")
        delta = doc.get("delta", False)
        if not isinstance(delta, bool):
            raise ProtocolError("'delta' must be true or false")
        return Auth(token, delta)
    if not isinstance(kind, str):
        raise ProtocolError("'type' must be a string")
    raise ProtocolError(f"unknown message type {kind[:40]!r}")


def encode(kind: str, **fields: Any) -> bytes:
    """Encode a server message (`type`, `version`, then fields) as UTF-8 JSON.

    `version` is the protocol version that introduced the message (1 for all of version 1's).
    """
    doc = {"type": kind, "version": _MESSAGE_VERSIONS.get(kind, 1), **fields}
    return jsoncodec.dumps(doc)


def snapshot_frame(
    game_id: int,
    game_version: int,
    data_json: bytes,
    viewer_json: bytes | None,
    framing: Framing = Framing.WEBSOCKET,
) -> bytes:
    """A complete frame for a snapshot, from already-encoded `data`/`viewer`.

    Encoding is the fan-out's main cost, so it happens once per (game, version, viewer,
    framing) and the resulting frame bytes are written to every recipient's transport as they
    are.
    """
    head = b'{"type":"snapshot","version":1,"gameId":%d,"gameVersion":%d,"data":' % (
        game_id,
        game_version,
    )
    tail = b"}" if viewer_json is None else b',"viewer":' + viewer_json + b"}"
    return frame(framing, head + data_json + tail)


def delta_frame(
    game_id: int,
    game_version: int,
    base_version: int,
    patch_json: bytes,
    viewer_field: bytes = b"",
    framing: Framing = Framing.WEBSOCKET,
) -> bytes:
    """A complete frame for a protocol-2 `delta`, from an already-encoded JSON Patch.

    `viewer_field` is empty (the user's private part did not change, or there is none),
    `,"viewerPatch":[...]` or `,"viewer":{...}` (whichever is shorter).
    """
    head = b'{"type":"delta","version":2,"gameId":%d,"gameVersion":%d,"baseVersion":%d,' % (
        game_id,
        game_version,
        base_version,
    )
    return frame(framing, head + b'"patch":' + patch_json + viewer_field + b"}")
