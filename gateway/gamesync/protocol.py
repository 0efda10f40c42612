"""Websocket protocol v1 (DESIGN §2): client message parsing and server frame encoding. Pure."""

from __future__ import annotations

import struct
from dataclasses import dataclass
from enum import IntEnum
from typing import Any

from gamesync import jsoncodec
from gamesync.errors import ProtocolError

__all__ = [
    "PROTOCOL_VERSION",
    "Auth",
    "ClientMessage",
    "Close",
    "Ping",
    "Subscribe",
    "Unsubscribe",
    "encode",
    "parse_client_message",
    "snapshot_frame",
    "text_frame",
]

PROTOCOL_VERSION = 1
_MAX_GAME_ID = 2**63 - 1


class Close(IntEnum):
    """Close codes, RFC 6455 §7.4 plus the 4xxx application range (DESIGN §2)."""

    NORMAL = 1000
    UNSUPPORTED_DATA = 1003  # binary frame
    POLICY = 1008  # flooding, origin
    TOO_BIG = 1009
    INTERNAL = 1011
    DRAINING = 1012  # service restart: reconnect
    TRY_AGAIN_LATER = 1013  # pod full or client too slow
    PROTOCOL_VIOLATION = 4400
    UNAUTHORIZED = 4401
    FORBIDDEN = 4403
    TIMEOUT = 4408  # heartbeat or idle
    TOO_MANY_CONNECTIONS = 4429


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
        return Auth(token)
    if not isinstance(kind, str):
        raise ProtocolError("'type' must be a string")
    raise ProtocolError(f"unknown message type {kind[:40]!r}")


def encode(kind: str, **fields: Any) -> bytes:
    """Encode a server message (`type`, `version`, then fields) as UTF-8 JSON."""
    doc = {"type": kind, "version": PROTOCOL_VERSION, **fields}
    return jsoncodec.dumps(doc)


def snapshot_frame(
    game_id: int, game_version: int, data_json: bytes, viewer_json: bytes | None
) -> bytes:
    """A complete websocket text frame for a snapshot, from already-encoded `data`/`viewer`.

    Encoding is the fan-out's main cost, so it happens once per (game, version, viewer) and the
    resulting frame bytes are written to every recipient's transport as they are.
    """
    head = b'{"type":"snapshot","version":%d,"gameId":%d,"gameVersion":%d,"data":' % (
        PROTOCOL_VERSION,
        game_id,
        game_version,
    )
    tail = b"}" if viewer_json is None else b',"viewer":' + viewer_json + b"}"
    return text_frame(head + data_json + tail)


def text_frame(payload: bytes) -> bytes:
    """Frame `payload` as one unmasked, final text frame (RFC 6455 §5.2; servers never mask)."""
    size = len(payload)
    if size < 126:
        header = struct.pack("!BB", 0x81, size)
    elif size < 1 << 16:
        header = struct.pack("!BBH", 0x81, 126, size)
    else:
        header = struct.pack("!BBQ", 0x81, 127, size)
    return header + payload
