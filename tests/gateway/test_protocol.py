"""gamesync.protocol: client message parsing, server message encoding, frames (RFC 6455 §5.2)."""

from __future__ import annotations

import json
import re
import struct
from pathlib import Path
from typing import Any

import pytest
from websockets.client import ClientProtocol
from websockets.frames import Frame, Opcode
from websockets.protocol import State
from websockets.uri import parse_uri

from gamesync.errors import ProtocolError
from gamesync.framing import text_frame
from gamesync.protocol import (
    CLOSE_CLASSES,
    PROTOCOL_VERSION,
    Auth,
    Close,
    Ping,
    Reaction,
    Subscribe,
    Unsubscribe,
    close_class,
    encode,
    parse_client_message,
    snapshot_frame,
)


def refused(text: str) -> str:
    with pytest.raises(ProtocolError) as caught:
        parse_client_message(text)
    return caught.value.message


# client messages -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("message", "parsed"),
    [
        ({"type": "subscribe", "gameId": 42}, Subscribe(42)),
        ({"type": "unsubscribe", "gameId": 42}, Unsubscribe(42)),
        ({"type": "subscribe", "gameId": 0}, Subscribe(0)),
        ({"type": "subscribe", "gameId": 2**63 - 1}, Subscribe(2**63 - 1)),
        ({"type": "ping"}, Ping()),
        ({"type": "auth", "token": "a.b.c"}, Auth("a.b.c")),
        ({"type": "ping", "extra": [1, 2]}, Ping()),  # unknown fields are ignored
    ],
)
def test_every_client_message_is_parsed(message: dict[str, Any], parsed: object) -> None:
    assert parse_client_message(json.dumps(message)) == parsed


@pytest.mark.parametrize("text", ["", "{", "{'type': 'ping'}", "ping", "[" * 5000, "NaN"])
def test_malformed_json_is_a_protocol_error(text: str) -> None:
    assert refused(text) in {"malformed JSON", "a message must be a JSON object"}


@pytest.mark.parametrize("text", ["[]", '"ping"', "1", "null", "true"])
def test_message_must_be_an_object(text: str) -> None:
    assert refused(text) == "a message must be a JSON object"


@pytest.mark.parametrize("kind", [None, 1, ["ping"], {"t": 1}])
def test_type_must_be_a_string(kind: Any) -> None:
    document = {"gameId": 1} if kind is None else {"type": kind, "gameId": 1}
    assert refused(json.dumps(document)) == "'type' must be a string"


def test_unknown_type_is_named_and_truncated() -> None:
    assert refused('{"type": "hello"}') == "unknown message type 'hello'"
    assert refused(json.dumps({"type": "x" * 500})) == f"unknown message type {'x' * 40!r}"


@pytest.mark.parametrize("kind", ["subscribe", "unsubscribe"])
@pytest.mark.parametrize("game_id", [..., None, True, False, 1.0, "42", -1, 2**63, [42]])
def test_game_id_must_be_a_non_negative_integer(kind: str, game_id: Any) -> None:
    document: dict[str, Any] = {"type": kind}
    if game_id is not ...:
        document["gameId"] = game_id
    assert refused(json.dumps(document)) == "'gameId' must be a non-negative integer"


@pytest.mark.parametrize("token", [..., None, "", 1, ["a.b.c"]])
def test_auth_needs_a_non_empty_token_string(token: Any) -> None:
    document: dict[str, Any] = {"type": "auth"}
    if token is not ...:
        document["token"] = token
    assert refused(json.dumps(document)) == "'token' must be a non-empty string"


# server messages -------------------------------------------------------------------------------


def test_encode_puts_type_and_version_first() -> None:
    payload = encode("subscribed", gameId=42)
    assert payload == b'{"type":"subscribed","version":1,"gameId":42}'
    assert encode("error", code="forbidden", message="ü").decode() == (
        '{"type":"error","version":1,"code":"forbidden","message":"ü"}'
    )


def test_messages_keep_the_version_that_introduced_them() -> None:
    """Version 2 adds messages; version 1's are byte for byte what a v1 client always got."""
    assert PROTOCOL_VERSION == 2
    assert encode("welcome", userId="7").startswith(b'{"type":"welcome","version":1,')
    assert encode("delta", gameId=1).startswith(b'{"type":"delta","version":2,')
    assert encode("close", code=1012).startswith(b'{"type":"close","version":2,')


# close codes ----------------------------------------------------------------------------------

REPO = Path(__file__).resolve().parents[2]


def design_close_codes() -> dict[int, Reaction]:
    """DESIGN §2's close-code table: code -> the reaction its third column starts with."""
    rows = re.findall(
        r"^\| (\d{4}) \| [^|]+ \| `(\w+)`", (REPO / "docs" / "DESIGN.md").read_text(), re.M
    )
    return {int(code): Reaction(reaction) for code, reaction in rows}


def js_constant(name: str) -> str:
    source = (REPO / "clients" / "js" / "src" / "index.js").read_text()
    match = re.search(rf"^const {name} = (.+);$", source, re.M)
    assert match is not None, f"{name} is no longer a constant in clients/js/src/index.js"
    return match.group(1)


def codes_reacting(reaction: Reaction) -> set[int]:
    return {code for code, kind in CLOSE_CLASSES.items() if kind.reaction is reaction}


def test_every_close_code_the_server_sends_is_classified() -> None:
    assert set(Close) <= set(CLOSE_CLASSES)


def test_the_design_lists_exactly_the_server_close_codes_with_their_reactions() -> None:
    documented = design_close_codes()
    assert set(documented) == {int(c) for c in Close}
    assert documented == {int(c): close_class(c).reaction for c in Close}


def test_the_js_client_reacts_to_close_codes_as_the_table_says() -> None:
    final = {int(n) for n in re.findall(r"\d+", js_constant("FINAL_CLOSE_CODES"))}
    assert final == codes_reacting(Reaction.STOP)
    assert {int(js_constant("CLOSE_UNAUTHORIZED"))} == codes_reacting(Reaction.RENEW)
    assert {int(js_constant("CLOSE_IDLE"))} == codes_reacting(Reaction.RECONNECT_IF_SUBSCRIBED)
    assert {int(js_constant("CLOSE_WRONG_SHARD"))} == codes_reacting(Reaction.RESHARD)


@pytest.mark.parametrize(
    ("code", "error"),
    [
        *[(code, False) for code in (1000, 1001, 1005, 1012)],
        *[(code, True) for code in (1006, 1011, 4401, 4000, 4999)],
    ],
)
def test_clean_ends_and_drains_are_not_errors_and_anything_unknown_is(
    code: int, error: bool
) -> None:
    assert close_class(code).error is error


def test_an_unknown_close_code_means_reconnect() -> None:
    assert close_class(4000).reaction is Reaction.RECONNECT  # e.g. the clients' own 4000


# frames ----------------------------------------------------------------------------------------


def client_side() -> ClientProtocol:
    return ClientProtocol(parse_uri("ws://gateway/ws"), state=State.OPEN, max_size=None)


def received_texts(data: bytes) -> list[str]:
    """What a real websocket client (websockets' sans-I/O protocol) reads from these bytes."""
    client = client_side()
    client.receive_data(data)
    events = client.events_received()
    frames = [e for e in events if isinstance(e, Frame)]
    assert len(frames) == len(events)
    assert all(f.opcode is Opcode.TEXT and f.fin for f in frames)
    assert client.state is State.OPEN  # no protocol error, no close
    return [bytes(f.data).decode() for f in frames]


@pytest.mark.parametrize("size", [0, 1, 125, 126, 127, 65535, 65536, 70000])
def test_text_frame_of_any_length_parses_as_one_text_message(size: int) -> None:
    payload = ("é" * (size // 2) + "x" * (size % 2)).encode()
    assert len(payload) == size
    assert received_texts(text_frame(payload)) == [payload.decode()]


@pytest.mark.parametrize(
    ("size", "header"),
    [
        (0, b"\x81\x00"),
        (125, b"\x81\x7d"),
        (126, b"\x81\x7e" + struct.pack("!H", 126)),
        (65535, b"\x81\x7e" + struct.pack("!H", 65535)),
        (65536, b"\x81\x7f" + struct.pack("!Q", 65536)),
    ],
)
def test_text_frame_header_is_fin_text_unmasked_with_minimal_length(
    size: int, header: bytes
) -> None:
    """RFC 6455 §5.2: FIN + opcode 1, MASK bit clear, the shortest length encoding."""
    frame = text_frame(b"a" * size)
    assert frame[: len(header)] == header
    assert len(frame) == len(header) + size


def test_frames_back_to_back_parse_in_order() -> None:
    frames = text_frame(b'{"n":1}') + text_frame(b"x" * 300) + text_frame(b"")
    assert received_texts(frames) == ['{"n":1}', "x" * 300, ""]


@pytest.mark.parametrize("viewer", [None, {"hand": ["AS", "KD"]}, [], 0, "ü"])
def test_snapshot_frame_is_valid_json_with_or_without_viewer(viewer: Any) -> None:
    data = {"round": 3, "players": ["ann", "bob"], "note": '"quoted" ü'}
    data_json = json.dumps(data).encode()
    viewer_json = None if viewer is None else json.dumps(viewer).encode()
    (text,) = received_texts(snapshot_frame(42, 17, data_json, viewer_json))
    message = json.loads(text)
    expected: dict[str, Any] = {
        "type": "snapshot",
        "version": 1,  # a version-1 message, also on a version-2 connection
        "gameId": 42,
        "gameVersion": 17,
        "data": data,
    }
    if viewer is not None:
        expected["viewer"] = viewer
    assert message == expected
    assert ("viewer" in message) is (viewer is not None)
