"""gamesync.envelope: every validation rule of the publish envelope (DESIGN §3)."""

from __future__ import annotations

import json
from typing import Any

import pytest

from gamesync.envelope import Envelope, parse_envelope
from gamesync.errors import EnvelopeError

TRACEPARENT = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"


def doc(**changes: Any) -> dict[str, Any]:
    base: dict[str, Any] = {"gameId": 42, "version": 17, "snapshot": {"round": 3}}
    base.update(changes)
    return {k: v for k, v in base.items() if v is not ...}


def refused(document: Any, **kwargs: Any) -> str:
    raw = document if isinstance(document, bytes) else json.dumps(document)
    with pytest.raises(EnvelopeError) as caught:
        parse_envelope(raw, **kwargs)
    return str(caught.value)


def test_full_envelope_is_parsed_and_raw_bytes_are_kept() -> None:
    raw = json.dumps(
        doc(
            viewers={"7": {"hand": ["AS"]}},
            members=["7", "8"],
            traceparent=TRACEPARENT,
            publishedAt=1764115200.5,
        )
    ).encode()
    envelope = parse_envelope(raw, expected_game_id=42)
    assert envelope == Envelope(
        game_id=42,
        version=17,
        snapshot_json=b'{"round":3}',
        viewers={"7": {"hand": ["AS"]}},
        members=frozenset({"7", "8"}),
        traceparent=TRACEPARENT,
        published_at=1764115200.5,
    )
    assert envelope.raw == raw


def test_minimal_envelope_has_no_optional_parts() -> None:
    envelope = parse_envelope(json.dumps(doc()))
    assert envelope.viewers is None
    assert envelope.members is None
    assert envelope.traceparent is None
    assert envelope.published_at is None
    assert envelope.raw == json.dumps(doc()).encode()  # str input is stored as UTF-8


@pytest.mark.parametrize("body", [b"", b"{", b"nul", b"\xff\xfe{}", b'{"gameId": NaN}'])
def test_body_that_is_not_json_is_refused(body: bytes) -> None:
    assert refused(body) == "body is not valid JSON"


@pytest.mark.parametrize("constant", ["NaN", "Infinity", "-Infinity"])
def test_non_json_number_constants_are_refused(constant: str) -> None:
    body = f'{{"gameId": 1, "version": 1, "snapshot": {{"x": {constant}}}}}'.encode()
    assert refused(body) == "body is not valid JSON"


@pytest.mark.parametrize("document", [[], "x", 1, None])
def test_envelope_must_be_an_object(document: Any) -> None:
    assert refused(document) == "an envelope must be a JSON object"


@pytest.mark.parametrize("name", ["gameId", "version"])
@pytest.mark.parametrize("value", [..., None, True, False, 1.0, "1", [1]])
def test_ids_must_be_integers_and_bools_are_not(name: str, value: Any) -> None:
    assert refused(doc(**{name: value})) == f"'{name}' must be an integer"


@pytest.mark.parametrize("name", ["gameId", "version"])
@pytest.mark.parametrize("value", [-1, 2**63])
def test_ids_must_fit_a_signed_64_bit_range(name: str, value: int) -> None:
    assert refused(doc(**{name: value})) == f"'{name}' must be between 0 and 2^63-1"


def test_id_boundaries_are_accepted() -> None:
    envelope = parse_envelope(json.dumps(doc(gameId=0, version=2**63 - 1)))
    assert (envelope.game_id, envelope.version) == (0, 2**63 - 1)


def test_game_id_must_match_the_path() -> None:
    assert refused(doc(), expected_game_id=43) == "gameId 42 differs from the path's 43"
    assert parse_envelope(json.dumps(doc()), expected_game_id=42).game_id == 42


@pytest.mark.parametrize("snapshot", [..., None, [], "state", 3])
def test_snapshot_must_be_an_object(snapshot: Any) -> None:
    assert refused(doc(snapshot=snapshot)) == "'snapshot' must be a JSON object"


@pytest.mark.parametrize("viewers", [[], "7", 1, True])
def test_viewers_must_be_an_object(viewers: Any) -> None:
    assert refused(doc(viewers=viewers)) == "'viewers' must be an object keyed by user id"


@pytest.mark.parametrize("members", ["7", {"7": 1}, [True], [1.5], [None], [["7"]]])
def test_members_must_be_a_list_of_ids(members: Any) -> None:
    assert refused(doc(members=members)) == "'members' must be a list of user ids"


def test_members_are_normalised_to_strings() -> None:
    envelope = parse_envelope(json.dumps(doc(members=[7, "8", 7, "7"])))
    assert envelope.members == frozenset({"7", "8"})


@pytest.mark.parametrize(
    "traceparent",
    [
        1,
        "",
        TRACEPARENT.upper(),
        TRACEPARENT[:-1],
        TRACEPARENT + "\n",
        TRACEPARENT.replace("-", "_"),
        "ff" + TRACEPARENT[2:],  # version ff is invalid
        f"00-{'0' * 32}-00f067aa0ba902b7-01",  # all-zero trace id
        f"00-4bf92f3577b34da6a3ce929d0e0e4736-{'0' * 16}-01",  # all-zero parent id
    ],
)
def test_traceparent_must_be_a_w3c_header_value(traceparent: Any) -> None:
    message = refused(doc(traceparent=traceparent))
    assert message == "'traceparent' must be a W3C traceparent header value"


@pytest.mark.parametrize("published_at", [True, "now", [1]])
def test_published_at_must_be_a_number(published_at: Any) -> None:
    assert refused(doc(publishedAt=published_at)) == "'publishedAt' must be a number (Unix seconds)"


def test_published_at_integer_becomes_float() -> None:
    assert parse_envelope(json.dumps(doc(publishedAt=1764115200))).published_at == 1764115200.0


def test_deeply_nested_body_is_refused_not_crashing() -> None:
    body = b'{"gameId": 1, "version": 1, "snapshot": ' + b'{"a":' * 5000 + b"1" + b"}" * 5001
    assert refused(body) == "body is not valid JSON"
