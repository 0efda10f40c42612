"""The publish envelope (DESIGN §3): one JSON object per state commit, validated once.

Every gateway parses every envelope of its games, so parsing is on the per-publish hot path.
When `snapshot` is the last member (the order the bench publisher, `gamesync.publisher` and
docs/publishing.md use), `parse_envelope` takes a fast path: the members in front of the snapshot
are decoded on their own, the snapshot's bytes are only validated, and its JSON text is kept as
it arrived, so the hub puts it into frames without decoding and re-encoding it (integers beyond
64 bits included). Any other shape, and anything the fast path would refuse, goes through the
full decode, which has the last word on what is valid and why.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import orjson

from gamesync import jsoncodec
from gamesync.errors import EnvelopeError

__all__ = ["Envelope", "add_field", "envelope_json", "parse_envelope", "stamp_published_at"]

_TRACEPARENT = re.compile(r"^[0-9a-f]{2}-[0-9a-f]{32}-[0-9a-f]{16}-[0-9a-f]{2}$")
_MAX_ID = 2**63 - 1


@dataclass(frozen=True, slots=True)
class Envelope:
    """A validated envelope. `raw` is the JSON exactly as published (what Redis stores);
    `snapshot_json` is the snapshot's JSON text (as published when the fast path sliced it)."""

    game_id: int
    version: int
    snapshot_json: bytes
    viewers: Mapping[str, Any] | None = None
    members: frozenset[str] | None = None
    traceparent: str | None = None
    published_at: float | None = None
    raw: bytes = field(default=b"", repr=False, compare=False)

    @property
    def snapshot(self) -> Any:
        """The snapshot, decoded on demand (the fan-out never needs it decoded)."""
        return jsoncodec.loads(self.snapshot_json)


def _int_field(doc: Mapping[str, Any], name: str) -> int:
    value = doc.get(name)
    if isinstance(value, bool) or not isinstance(value, int):
        raise EnvelopeError(f"'{name}' must be an integer")
    if not 0 <= value <= _MAX_ID:
        raise EnvelopeError(f"'{name}' must be between 0 and 2^63-1")
    return value


def _valid_traceparent(value: object) -> bool:
    # W3C Trace Context §3.2: version ff and all-zero trace or parent ids are invalid.
    if not isinstance(value, str) or not _TRACEPARENT.fullmatch(value):
        return False
    version, trace_id, parent_id, _ = value.split("-")
    return version != "ff" and trace_id != "0" * 32 and parent_id != "0" * 16


def parse_envelope(raw: bytes | str, *, expected_game_id: int | None = None) -> Envelope:
    """Parse and validate an envelope; raise EnvelopeError with a reason a publisher can act on."""
    data = raw.encode() if isinstance(raw, str) else raw
    fast = _parse_fast(data, expected_game_id)
    return fast if fast is not None else _parse_full(data, expected_game_id)


# JSON's own whitespace (RFC 8259 §2), never `\s` (which also takes \f and \v).
_WS = b" \t\n\r"
_SNAPSHOT_KEY = b'"snapshot"'


def _parse_fast(data: bytes, expected_game_id: int | None) -> Envelope | None:
    """The envelope if `snapshot` is its last member and all is valid; else None.

    The text splits at the first `"snapshot"` key into the members in front of it, decoded as
    an object of their own, and the snapshot, whose bytes are validated (orjson parses them: one
    JSON object, nothing after it) but kept as they are, for the frames. If that key is not a
    top-level one (inside a nested object or an array), the front does not decode as an object;
    a member after the snapshot makes the snapshot's bytes invalid on their own. Every doubt
    returns None and the full decode decides, so both always agree (tests/gateway/
    test_envelope.py checks it on generated envelopes).
    """
    key = data.find(_SNAPSHOT_KEY)
    if key < 0:
        return None
    colon = key + len(_SNAPSHOT_KEY)
    while data[colon : colon + 1] in (b" ", b"\t", b"\n", b"\r"):
        colon += 1
    end = len(data.rstrip(_WS)) - 1
    if data[colon : colon + 1] != b":" or end <= colon or data[end] != 0x7D:  # "}" closes it
        return None
    snapshot = data[colon + 1 : end].strip(_WS)
    front = data[:key].rstrip(_WS)
    if front.endswith(b","):
        front = front[:-1] + b"}"
    elif front.endswith(b"{"):
        front += b"}"
    else:
        return None
    if not snapshot.startswith(b"{"):
        return None
    try:
        orjson.loads(snapshot)  # one JSON value, nothing after it: a trailing member fails here
        doc = jsoncodec.loads(front)  # exact: viewers are re-encoded, members compared
    except (ValueError, RecursionError):  # orjson.JSONDecodeError is a ValueError
        return None
    if not isinstance(doc, dict):
        return None
    try:
        return _validated(doc, expected_game_id, snapshot, data)
    except EnvelopeError:
        return None  # the full decode gives the reason


def _parse_full(data: bytes, expected_game_id: int | None) -> Envelope:
    """Decode the whole envelope (exact, any member order) and validate every field."""
    try:
        doc = jsoncodec.loads(data)
    except (ValueError, RecursionError) as exc:  # RecursionError: nested too deeply
        raise EnvelopeError("body is not valid JSON") from exc
    if not isinstance(doc, dict):
        raise EnvelopeError("an envelope must be a JSON object")
    snapshot = doc.get("snapshot")
    snapshot_json = jsoncodec.dumps(snapshot) if isinstance(snapshot, dict) else None
    return _validated(doc, expected_game_id, snapshot_json, data)


def _validated(
    doc: dict[str, Any], expected_game_id: int | None, snapshot_json: bytes | None, raw: bytes
) -> Envelope:
    """The envelope of a decoded document (its snapshot given as JSON text, None when it is not
    an object); EnvelopeError naming the first field that is wrong."""
    game_id = _int_field(doc, "gameId")
    if expected_game_id is not None and game_id != expected_game_id:
        raise EnvelopeError(f"gameId {game_id} differs from the path's {expected_game_id}")
    version = _int_field(doc, "version")
    if snapshot_json is None:
        raise EnvelopeError("'snapshot' must be a JSON object")
    viewers = doc.get("viewers")
    if viewers is not None and not isinstance(viewers, dict):
        raise EnvelopeError("'viewers' must be an object keyed by user id")
    members_raw = doc.get("members")
    members: frozenset[str] | None = None
    if members_raw is not None:
        if not isinstance(members_raw, list) or not all(
            isinstance(m, str | int) and not isinstance(m, bool) for m in members_raw
        ):
            raise EnvelopeError("'members' must be a list of user ids")
        members = frozenset(str(m) for m in members_raw)
    traceparent = doc.get("traceparent")
    if traceparent is not None and not _valid_traceparent(traceparent):
        raise EnvelopeError("'traceparent' must be a W3C traceparent header value")
    published_at = doc.get("publishedAt")
    if published_at is not None and (
        isinstance(published_at, bool) or not isinstance(published_at, int | float)
    ):
        raise EnvelopeError("'publishedAt' must be a number (Unix seconds)")
    return Envelope(
        game_id=game_id,
        version=version,
        snapshot_json=snapshot_json,
        viewers=viewers,
        members=members,
        traceparent=traceparent,
        published_at=float(published_at) if published_at is not None else None,
        raw=raw,
    )


def add_field(raw: bytes, name: str, value: Any) -> bytes:
    """Put a top-level field first in an envelope's JSON, keeping every other byte as it is.

    Publishers stamp `publishedAt` and `traceparent` this way, so the snapshot and viewers
    reach subscribers exactly as the backend wrote them. The caller makes sure the field is
    not there yet.
    """
    body = raw.strip()
    if not body.startswith(b"{"):
        raise EnvelopeError("an envelope must be a JSON object")
    stamp = b"{" + jsoncodec.dumps(name) + b":" + jsoncodec.dumps(value)
    rest = body[1:].lstrip()
    return stamp + rest if rest.startswith(b"}") else stamp + b"," + rest


def envelope_json(envelope: Envelope) -> bytes:
    """The envelope's JSON: exactly as published when it was parsed, else encoded from fields."""
    if envelope.raw:
        return envelope.raw
    doc: dict[str, Any] = {
        "gameId": envelope.game_id,
        "version": envelope.version,
        "snapshot": envelope.snapshot,
    }
    if envelope.viewers is not None:
        doc["viewers"] = dict(envelope.viewers)
    if envelope.members is not None:
        doc["members"] = sorted(envelope.members)
    if envelope.traceparent is not None:
        doc["traceparent"] = envelope.traceparent
    if envelope.published_at is not None:
        doc["publishedAt"] = envelope.published_at
    return jsoncodec.dumps(doc)


def stamp_published_at(envelope: Envelope, now: float) -> Envelope:
    """The envelope with `publishedAt` (for the publish→send latency metrics), if it had none.

    The field is added to the JSON too, so `raw` always says what the fields say.
    """
    if envelope.published_at is not None:
        return envelope
    published_at = round(now, 6)
    raw = add_field(envelope_json(envelope), "publishedAt", published_at)
    return dataclasses.replace(envelope, published_at=published_at, raw=raw)
