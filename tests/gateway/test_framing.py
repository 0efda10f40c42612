"""Framing per transport: websocket text frames (test_protocol.py) and SSE events in chunks."""

from __future__ import annotations

import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from gamesync.framing import Framing, frame, sse_comment, sse_end


def _unchunk(data: bytes) -> bytes:
    """One HTTP/1.1 chunk's data (RFC 9112 §7.1), checking its size line."""
    size, _, rest = data.partition(b"\r\n")
    assert rest.endswith(b"\r\n")
    body = rest[:-2]
    assert int(size, 16) == len(body)
    return body


def _event_data(event: bytes) -> bytes:
    """The data of one SSE event: its `data:` lines joined with \\n (WHATWG HTML §9.2.6)."""
    assert event.endswith(b"\n\n")
    lines = event[:-2].split(b"\n")
    assert all(line.startswith(b"data: ") for line in lines), lines
    return b"\n".join(line[6:] for line in lines)


def test_an_sse_event_is_one_data_line_in_one_chunk() -> None:
    payload = b'{"type":"pong","version":1}'
    framed = frame(Framing.SSE, payload)
    assert framed == b"23\r\ndata: " + payload + b"\n\n\r\n"
    assert _event_data(_unchunk(framed)) == payload


@given(
    st.recursive(
        st.none() | st.booleans() | st.integers() | st.text(),
        lambda inner: st.lists(inner) | st.dictionaries(st.text(), inner),
        max_leaves=20,
    ),
    st.sampled_from([None, 1, 2]),
    st.sampled_from(["\n", "\r\n", "\r"]),
)
def test_json_with_line_breaks_between_tokens_survives_as_several_data_lines(
    value: object, indent: int | None, newline: str
) -> None:
    """Published bytes are kept as they are, pretty-printed ones included."""
    text = json.dumps({"data": value}, indent=indent).replace("\n", newline)
    framed = frame(Framing.SSE, text.encode())
    assert json.loads(_event_data(_unchunk(framed))) == {"data": value}


def test_a_heartbeat_is_a_comment_and_the_end_is_the_last_chunk() -> None:
    assert _unchunk(sse_comment()) == b":\n\n"
    assert sse_end() == b"0\r\n\r\n"


@pytest.mark.parametrize("framing", list(Framing))
def test_each_framing_names_its_transport(framing: Framing) -> None:
    assert framing.value in {"websocket", "sse"}
