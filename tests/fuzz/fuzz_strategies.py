"""Hypothesis strategies for what a client can put on the wire: handshakes, frames, messages.

A generated `Session` is one connection: a handshake, a run of frames the gateway should parse
and answer (random opcodes, masks, lengths, UTF-8 and JSON shapes, message types, fragments),
and sometimes one trailing frame that breaks RFC 6455 on purpose. Encoding is pure.
"""

from __future__ import annotations

import json
import struct
from dataclasses import dataclass, field

from hypothesis import strategies as st

from chaos.rfc6455 import OP_BINARY, OP_CLOSE, OP_CONT, OP_PING, OP_PONG, OP_TEXT

__all__ = ["FrameSpec", "Session", "encode_frame", "raw_requests", "sessions"]

MAX_FRAME = 4096  # the gateway's default --max-frame-bytes


@dataclass(frozen=True)
class FrameSpec:
    """One frame as a client could write it, including what no client should write."""

    opcode: int
    payload: bytes
    fin: bool = True
    rsv: int = 0  # the three RSV bits, 0..7
    mask: bytes | None = b"\x00\x00\x00\x00"  # None: unmasked (a protocol error from a client)
    length_form: int = 0  # 0: minimal; 126 or 127: a longer length encoding than needed


@dataclass(frozen=True)
class Session:
    """A connection: handshake headers and path, then frames; `auth_first` is a frame's worth
    of first-message auth when the handshake carries no token."""

    path: str
    token_in: str  # header | query | message | none | garbage
    frames: list[FrameSpec] = field(default_factory=list)
    poison: FrameSpec | None = None

    @property
    def well_formed(self) -> bool:
        """No deliberate RFC violation: the gateway should answer a closing ping."""
        return self.poison is None


def encode_frame(spec: FrameSpec) -> bytes:
    """The frame's bytes (RFC 6455 §5.2), masked with `spec.mask` unless it is None."""
    n = len(spec.payload)
    first = (0x80 if spec.fin else 0) | (spec.rsv << 4) | spec.opcode
    mask_bit = 0x80 if spec.mask is not None else 0
    form = spec.length_form or (0 if n < 126 else 126 if n < 1 << 16 else 127)
    if form == 126:
        head = struct.pack("!BBH", first, mask_bit | 126, n)
    elif form == 127:
        head = struct.pack("!BBQ", first, mask_bit | 127, n)
    else:
        head = struct.pack("!BB", first, mask_bit | n)
    if spec.mask is None:
        return head + spec.payload
    mask = spec.mask
    body = bytes(b ^ mask[i % 4] for i, b in enumerate(spec.payload))
    return head + mask + body


# messages ---------------------------------------------------------------------------------

_scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=20)
)
json_values = st.recursive(
    _scalars,
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=8,
)
_game_ids = (
    st.integers(min_value=0, max_value=2**63 - 1)
    | st.integers(min_value=-(2**64), max_value=2**64)
    | st.sampled_from([0, 1, 2**53, 2**53 + 1, 2**63 - 1, 2**63, -1])
    | _scalars
)
_types = st.sampled_from(["subscribe", "unsubscribe", "ping", "auth"]) | st.text(max_size=12)


@st.composite
def _messages(draw: st.DrawFn) -> bytes:
    """A JSON object shaped like a client message: known or unknown type, good or bad fields."""
    doc: dict[str, object] = {}
    if draw(st.booleans()) or draw(st.booleans()):
        doc["type"] = draw(_types)
    if draw(st.booleans()):
        doc["gameId"] = draw(_game_ids)
    if doc.get("type") == "auth" or draw(st.integers(0, 9)) == 0:
        doc["token"] = draw(st.text(max_size=40) | _scalars)
    doc.update(draw(st.dictionaries(st.text(max_size=8), json_values, max_size=2)))
    return json.dumps(doc).encode()


_text_payloads = st.one_of(
    _messages(),
    _messages(),
    json_values.map(lambda v: json.dumps(v).encode()),
    st.text(max_size=60).map(lambda s: s.encode()),  # any UTF-8, JSON or not
    st.sampled_from([b"", b"{", b'{"type":', b"null", b"[]", b'"x"', b"1e999"]),
    st.integers(1, 3000).map(lambda depth: b"[" * depth + b"]" * depth),  # nesting depth
    _messages().map(lambda m: m[: len(m) // 2]),  # truncated JSON
)
_masks = st.just(b"\x00\x00\x00\x00") | st.binary(min_size=4, max_size=4)


@st.composite
def _good_frames(draw: st.DrawFn) -> list[FrameSpec]:
    """Frames a client may legally send: text (maybe fragmented), ping, pong; masked."""
    kind = draw(st.sampled_from(["text"] * 16 + ["fragmented", "ping", "pong", "length_form"]))
    mask = draw(_masks)
    if kind in ("ping", "pong"):
        opcode = OP_PING if kind == "ping" else OP_PONG
        return [FrameSpec(opcode, draw(st.binary(max_size=125)), mask=mask)]
    payload = draw(_text_payloads)
    if kind == "length_form" and len(payload) < 126:
        # RFC 6455 §5.2 asks senders for the minimal length encoding; receivers may accept more
        form = draw(st.sampled_from([126, 127]))
        return [FrameSpec(OP_TEXT, payload, mask=mask, length_form=form)]
    if kind == "fragmented" and len(payload) >= 2:
        cuts = sorted(draw(st.sets(st.integers(1, len(payload) - 1), min_size=1, max_size=4)))
        pieces = [payload[a:b] for a, b in zip([0, *cuts], [*cuts, len(payload)], strict=True)]
        frames = [FrameSpec(OP_TEXT, pieces[0], fin=False, mask=mask)]
        frames += [FrameSpec(OP_CONT, p, fin=False, mask=mask) for p in pieces[1:-1]]
        if draw(st.booleans()):  # a ping may come between fragments (§5.4)
            frames.append(FrameSpec(OP_PING, b"between", mask=mask))
        frames.append(FrameSpec(OP_CONT, pieces[-1], mask=mask))
        return frames
    return [FrameSpec(OP_TEXT, payload, mask=mask)]


_close_codes = st.sampled_from([1000, 1001, 1002, 1003, 1007, 1008, 1011, 3000, 4000, 4999]) | (
    st.integers(0, 65535)
)


_POISONS = (
    "reserved_opcode", "rsv", "unmasked", "long_control", "fragmented_control",
    "stray_continuation", "bad_utf8", "too_big", "binary", "close",
)  # fmt: skip


@st.composite
def _poison(draw: st.DrawFn) -> FrameSpec:
    """One frame that ends the connection: every way RFC 6455 (or the gateway) refuses."""
    kind = draw(st.sampled_from(_POISONS))
    mask = draw(_masks)
    if kind == "reserved_opcode":
        opcode = draw(st.sampled_from([3, 4, 5, 6, 7, 0xB, 0xC, 0xD, 0xE, 0xF]))
        return FrameSpec(opcode, draw(st.binary(max_size=20)), mask=mask)
    if kind == "rsv":
        return FrameSpec(OP_TEXT, b'{"type":"ping"}', rsv=draw(st.integers(1, 7)), mask=mask)
    if kind == "unmasked":
        return FrameSpec(OP_TEXT, b'{"type":"ping"}', mask=None)
    if kind == "long_control":
        opcode = draw(st.sampled_from([OP_PING, OP_PONG, OP_CLOSE]))
        return FrameSpec(opcode, draw(st.binary(min_size=126, max_size=300)), mask=mask)
    if kind == "fragmented_control":
        return FrameSpec(OP_PING, b"x", fin=False, mask=mask)
    if kind == "stray_continuation":
        return FrameSpec(OP_CONT, draw(st.binary(max_size=20)), mask=mask)
    if kind == "bad_utf8":
        prefix = draw(st.binary(max_size=10))
        return FrameSpec(
            OP_TEXT,
            prefix + draw(st.sampled_from([b"\xff", b"\xc3\x28", b"\xed\xa0\x80"])),
            mask=mask,
        )
    if kind == "too_big":
        return FrameSpec(OP_TEXT, b"x" * draw(st.integers(MAX_FRAME + 1, 3 * MAX_FRAME)), mask=mask)
    if kind == "binary":
        return FrameSpec(OP_BINARY, draw(st.binary(max_size=50)), mask=mask)
    if kind == "close":
        code = draw(_close_codes)
        reason = draw(st.binary(max_size=20) | st.text(max_size=20).map(str.encode))
        payload = draw(st.sampled_from([b"", b"\x03"])) or struct.pack("!H", code) + reason
        return FrameSpec(OP_CLOSE, payload[:125], mask=mask)
    raise AssertionError(kind)


_paths = st.sampled_from(["/ws"] * 6 + ["/ws/games/1", "/ws/games/42"]) | st.integers(
    0, 10**18
).map(lambda g: f"/ws/games/{g}")


@st.composite
def sessions(draw: st.DrawFn, *, min_frames: int = 10, max_frames: int = 40) -> Session:
    """A connection worth fuzzing: mostly authenticated, mostly well-framed, then maybe poison."""
    token_in = draw(
        st.sampled_from(["header"] * 14 + ["query", "message", "message", "none", "garbage"])
    )
    groups = draw(st.lists(_good_frames(), min_size=min_frames, max_size=max_frames))
    frames = [frame for group in groups for frame in group]
    poison = draw(st.none() | st.none() | st.none() | _poison())
    return Session(draw(_paths), token_in, frames, poison)


# raw handshakes ---------------------------------------------------------------------------

_header_names = st.sampled_from(
    [
        "Host", "Upgrade", "Connection", "Sec-WebSocket-Key", "Sec-WebSocket-Version",
        "Sec-WebSocket-Extensions", "Sec-WebSocket-Protocol", "Origin", "Authorization",
        "Cookie", "X-Forwarded-For",
    ]
) | st.from_regex(r"\A[A-Za-z][A-Za-z0-9-]{0,20}\Z")  # fmt: skip
_HEADER_VALUES = (
    "websocket", "Upgrade", "keep-alive, Upgrade", "13", "8", "dGhlIHNhbXBsZSBub25jZQ==",
    "permessage-deflate; client_max_window_bits", "chat", "http://evil.example", "Bearer ",
    "Bearer x.y.z", "", " ", "127.0.0.1",
)  # fmt: skip
_printable = st.characters(min_codepoint=0x20, max_codepoint=0x7E)
_header_values = st.sampled_from(_HEADER_VALUES) | st.text(alphabet=_printable, max_size=60)


@st.composite
def raw_requests(draw: st.DrawFn) -> bytes:
    """A complete HTTP/1.1-ish request head: a real upgrade with parts changed, or junk."""
    method = draw(st.sampled_from(["GET"] * 6 + ["POST", "HEAD", "OPTIONS", "PUT", "get", "BREW"]))
    path = draw(
        _paths
        | st.sampled_from(["/", "/readyz", "/healthz", "/ws?token=", "/ws/games/", "*", "//ws"])
        | st.text(alphabet=st.characters(min_codepoint=0x21, max_codepoint=0x7E), max_size=40)
    )
    version = draw(st.sampled_from(["HTTP/1.1"] * 6 + ["HTTP/1.0", "HTTP/2.0", "HTTP/1.1 ", ""]))
    headers = [
        ("Host", "127.0.0.1"),
        ("Upgrade", "websocket"),
        ("Connection", "Upgrade"),
        ("Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ=="),
        ("Sec-WebSocket-Version", "13"),
    ]
    kept = [h for h in headers if draw(st.integers(0, 5))]  # each dropped one time in six
    kept += draw(st.lists(st.tuples(_header_names, _header_values), max_size=6))
    order = draw(st.permutations(kept))
    lines = [f"{method} {path} {version}".rstrip(), *(f"{n}: {v}" for n, v in order)]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1", "replace")
