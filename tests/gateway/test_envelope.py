"""gamesync.envelope: every validation rule of the publish envelope (DESIGN §3)."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from gamesync.bench.payload import SnapshotFactory
from gamesync.bench.payload import envelope_json as bench_envelope
from gamesync.envelope import Envelope, _parse_fast, _parse_full, add_field, parse_envelope
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


# The fast path (snapshot last, after plain members) and the full decode --------------------

_json = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**80), max_value=2**80)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=8),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=6), children, max_size=4)
    ),
    max_leaves=12,
)


def _mostly(valid: st.SearchStrategy[Any], *invalid: Any) -> st.SearchStrategy[Any]:
    """`valid` most of the time (7 in 8), else one of the `invalid` values."""

    @st.composite
    def pick(draw: st.DrawFn) -> Any:
        if draw(st.booleans()) and draw(st.booleans()) and draw(st.booleans()):
            return draw(st.sampled_from(invalid))
        return draw(valid)

    return pick()


_ids = _mostly(
    st.integers(min_value=0, max_value=2**63 - 1), -1, 2**63, 2**64, 2**70, True, 1.5, "7", None
)
_optional = {
    "members": _mostly(
        st.lists(st.one_of(st.text(max_size=5), st.integers(-(2**70), 2**70)), max_size=4),
        None,
        "7",
        [True],
        [1.5],
        {"7": 1},
        [["7"]],
    ),
    "traceparent": _mostly(st.just(TRACEPARENT), None, "x", 1, TRACEPARENT.upper()),
    "publishedAt": _mostly(
        st.floats(min_value=0, max_value=2e9) | st.integers(0, 2**70), True, "now", None
    ),
    "viewers": _mostly(st.dictionaries(st.text(max_size=3), _json, max_size=2), None, [], 1),
    "extra": _json,
}


@st.composite
def envelope_texts(draw: st.DrawFn) -> bytes:
    """Envelopes as publishers write them: any member order, spacing, escaping, duplicates."""
    members: list[tuple[str, Any]] = [
        ("gameId", draw(_ids)),
        ("version", draw(_ids)),
        ("snapshot", draw(_mostly(st.dictionaries(st.text(max_size=6), _json), None, [], 3))),
    ]
    for name, strategy in _optional.items():
        if draw(st.booleans()):
            members.append((name, draw(strategy)))
    if draw(st.booleans()):  # a repeated key: the last one wins in both decoders
        members.append(draw(st.sampled_from(members)))
    order = draw(st.permutations(range(len(members))))
    if draw(st.booleans()):  # the common shape: snapshot last
        order = [i for i in order if members[i][0] != "snapshot"] + [2]
    space = draw(st.sampled_from(["", " ", "\n  ", "\t"]))
    ascii_only = draw(st.booleans())
    parts = [
        json.dumps(members[i][0])
        + space
        + ":"
        + space
        + json.dumps(members[i][1], ensure_ascii=ascii_only)
        for i in order
    ]
    return (space + "{" + space + ("," + space).join(parts) + space + "}" + space).encode()


def _decoded(envelope: Envelope) -> tuple[Any, ...]:
    """Every field, the snapshot decoded exactly (the standard library keeps big integers)."""
    return (
        envelope.game_id,
        envelope.version,
        json.loads(envelope.snapshot_json),
        envelope.viewers,
        envelope.members,
        envelope.traceparent,
        envelope.published_at,
        envelope.raw,
    )


@given(envelope_texts(), st.sampled_from([None, 0, 7]))
@example(b'{"gameId":7,"version":2,"members":[1180591620717411303424,-3],"snapshot":{}}', None)
@example(b'{"gameId":7,"version":2,"publishedAt":1180591620717411303424,"snapshot":{}}', 7)
@example(b'{"gameId":18446744073709551615,"version":2,"snapshot":{}}', None)
@example(b'{"gameId":7,"version":2,"viewers":null,"snapshot":{"a":1e400}}', None)
@settings(max_examples=600, deadline=None)
def test_fast_path_and_full_decode_agree_on_every_envelope(
    raw: bytes, expected: int | None
) -> None:
    fast = _parse_fast(raw, expected)
    try:
        full = _parse_full(raw, expected)
    except EnvelopeError:
        assert fast is None  # the fast path never accepts what the full decode refuses
        with pytest.raises(EnvelopeError):
            parse_envelope(raw, expected_game_id=expected)
        return
    if fast is not None:
        assert _decoded(fast) == _decoded(full)
    assert _decoded(parse_envelope(raw, expected_game_id=expected)) == _decoded(full)


def test_snapshot_last_after_plain_members_keeps_its_bytes_as_published() -> None:
    snapshot = b'{ "n" : 123456789012345678901234567890, "s":"\\u00e9", "f": 1.0e2 }'
    raw = (
        b'{"publishedAt":1764115200.5, "traceparent":"%s","gameId":42,"members":["7",8],'
        b'"version":17, "snapshot": %s }\n' % (TRACEPARENT.encode(), snapshot)
    )
    envelope = _parse_fast(raw, 42)
    assert envelope is not None
    assert envelope.snapshot_json == snapshot  # exact: no float, no re-encoding
    assert envelope.snapshot == {"n": 123456789012345678901234567890, "s": "é", "f": 100.0}
    assert envelope.members == frozenset({"7", "8"})
    assert (envelope.game_id, envelope.version, envelope.published_at) == (42, 17, 1764115200.5)


@pytest.mark.parametrize(
    "raw",
    [
        b'{"gameId":1,"version":2,"snapshot":{"a":1},"members":["7"]}',  # a member after it
        b'{"gameId":1,"version":2,"x":{"snapshot":{}},"snapshot":{"a":1}}',  # nested key first
        b'["snapshot":{"a":1}]',  # not an object
        b'{"gameId":1,"version":2,"snapshot":{"a":1},"snapshot":{"b":2}}',  # twice
        b'{"gameId":1,"version":2,"snap\\u0073hot":{"a":1}}',  # an escaped key
        b'{"gameId":1,"version":2,"snapshot"\x0b:{"a":1}}',  # \v is not JSON whitespace
    ],
)
def test_other_shapes_take_the_full_decode(raw: bytes) -> None:
    assert _parse_fast(raw, None) is None


def test_viewers_in_front_of_the_snapshot_are_decoded_exactly_on_the_fast_path() -> None:
    raw = (
        b'{"gameId":1,"version":2,"viewers":{"7":{"chips":123456789012345678901234567890}},'
        b'"members":[7],"snapshot":{"a":1}}'
    )
    envelope = _parse_fast(raw, 1)
    assert envelope is not None
    assert envelope.viewers == {"7": {"chips": 123456789012345678901234567890}}
    assert envelope.members == frozenset({"7"})
    assert envelope.snapshot_json == b'{"a":1}'


def test_the_bench_and_publisher_envelope_shape_takes_the_fast_path() -> None:
    data = SnapshotFactory(2048).data(1.5, 3)
    raw = bench_envelope(9, 3, data, 1764115200.25).encode()
    envelope = _parse_fast(raw, 9)
    assert envelope is not None
    assert envelope.snapshot_json == data.encode()
    stamped = add_field(b'{"gameId":9,"version":3,"snapshot":{"a":[1,2]}}', "publishedAt", 1.5)
    assert _parse_fast(stamped, 9) is not None
