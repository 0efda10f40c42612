"""Play a generated session against a live gateway and hold every reply to the contract.

Blocking sockets, one connection per session, one write for the whole session: the gateway
parses tens of frames per connection and the suite reaches 100,000 frames in minutes. A reply
outside the contract, or a session the gateway never answers, raises `ContractBroken` (and
Hypothesis shrinks the session that caused it).
"""

from __future__ import annotations

import contextlib
import json
import socket
import time
from collections import Counter
from dataclasses import dataclass, field
from urllib.parse import quote

from contract import CLOSE_CODES, ERROR_CODES, MESSAGE_TYPES, RFC_CLOSE_CODES
from fuzz_strategies import FrameSpec, Session, encode_frame

from chaos.rfc6455 import (
    OP_CLOSE,
    OP_PING,
    OP_PONG,
    OP_TEXT,
    ServerFrames,
    WireViolation,
    client_frame,
    handshake_request,
    parse_http_head,
)

__all__ = ["ContractBroken", "Totals", "play_request", "play_session"]

#: a session's replies must be complete this soon (the gateway answers in milliseconds)
REPLY_SECONDS = 5.0
_FINAL_PING = client_frame(OP_TEXT, b'{"type":"ping"}')


class ContractBroken(AssertionError):
    """The gateway answered outside the protocol, or not at all."""


@dataclass
class Totals:
    """What the fuzz sent and what came back, over every example."""

    sessions: int = 0
    handshakes: int = 0
    frames_sent: int = 0
    frames_received: int = 0
    statuses: Counter[int] = field(default_factory=Counter)
    closes: Counter[int] = field(default_factory=Counter)
    errors: Counter[str] = field(default_factory=Counter)
    messages: Counter[str] = field(default_factory=Counter)
    #: connections the gateway ended with no close frame (after an HTTP refusal, or a reset)
    dropped: int = 0

    @property
    def generated(self) -> int:
        """Frames plus handshakes: the figure the issue counts."""
        return self.frames_sent + self.handshakes


def _check_text(payload: bytes, totals: Totals) -> str:
    try:
        message = json.loads(payload)
    except ValueError as exc:
        raise ContractBroken(f"a text frame that is not JSON: {payload[:100]!r}") from exc
    if not isinstance(message, dict) or message.get("type") not in MESSAGE_TYPES:
        raise ContractBroken(f"a message of no documented type: {payload[:100]!r}")
    if message.get("version") != 1:
        raise ContractBroken(f"a message without version 1: {payload[:100]!r}")
    totals.messages[message["type"]] += 1
    if message["type"] == "error":
        code = message.get("code")
        if code not in ERROR_CODES:
            raise ContractBroken(f"an undocumented error code: {payload[:100]!r}")
        totals.errors[str(code)] += 1
    return str(message["type"])


def _connect(host: str, port: int) -> socket.socket:
    sock = socket.create_connection((host, port), timeout=REPLY_SECONDS)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return sock


def _read(sock: socket.socket, deadline: float) -> bytes | None:
    """The next bytes; b'' at EOF or reset; None when the deadline passed."""
    sock.settimeout(max(0.001, deadline - time.monotonic()))
    try:
        return sock.recv(65536)
    except TimeoutError:
        return None
    except ConnectionResetError:
        return b""


def play_session(host: str, port: int, session: Session, token: str, totals: Totals) -> None:
    """Send `session` (with `token` where it says) and check everything the gateway answers."""
    path, headers = session.path, {}
    if session.token_in == "header":
        headers["Authorization"] = f"Bearer {token}"
    elif session.token_in == "query":
        path += f"?token={quote(token)}"
    elif session.token_in == "garbage":
        headers["Authorization"] = "Bearer " + token[::-1]
    frames = [encode_frame(f) for f in session.frames]
    if session.token_in == "message":
        frames.insert(
            0, client_frame(OP_TEXT, json.dumps({"type": "auth", "token": token}).encode())
        )
    if session.poison is not None:
        frames.append(encode_frame(session.poison))
    else:
        frames.append(_FINAL_PING)
    sent_close = [
        f for f in (*session.frames, session.poison) if f is not None and f.opcode == OP_CLOSE
    ]
    totals.sessions += 1
    totals.handshakes += 1
    totals.frames_sent += len(frames)
    with _connect(host, port) as sock:
        sock.sendall(handshake_request(host, port, path, headers))
        deadline = time.monotonic() + REPLY_SECONDS
        data = b""
        while (parsed := parse_http_head(data)) is None:
            chunk = _read(sock, deadline)
            if chunk is None:
                raise ContractBroken("no answer to a handshake")
            if not chunk:
                raise ContractBroken("the handshake was dropped without an answer")
            data += chunk
        head, rest = parsed
        totals.statuses[head.status] += 1
        if head.status >= 500:
            raise ContractBroken(f"HTTP {head.status} to a handshake")
        if head.status != 101:
            return
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):
            sock.sendall(b"".join(frames))  # closed while we wrote: its answer is still read
        _check_frames(sock, rest, session, sent_close, totals)


def _check_frames(
    sock: socket.socket,
    data: bytes,
    session: Session,
    sent_close: list[FrameSpec],
    totals: Totals,
) -> None:
    parser = ServerFrames(max_payload=1 << 20)
    deadline = time.monotonic() + REPLY_SECONDS
    # A close frame from the client is answered with its own code (RFC 6455 §5.5.1).
    echoable = {int.from_bytes(f.payload[:2], "big") for f in sent_close if len(f.payload) >= 2}
    while True:
        try:
            frames = parser.feed(data)
        except WireViolation as exc:
            raise ContractBroken(str(exc)) from exc
        for frame in frames:
            totals.frames_received += 1
            if frame.opcode == OP_TEXT:
                kind = _check_text(frame.payload, totals)
                if kind == "pong" and session.well_formed:
                    return  # the closing ping was answered: every earlier frame was handled
            elif frame.opcode == OP_CLOSE:
                code = frame.close_code or 1005
                totals.closes[code] += 1
                if code not in CLOSE_CODES | RFC_CLOSE_CODES and code not in echoable:
                    raise ContractBroken(f"close code {code} ({frame.payload[2:80]!r})")
                return
            elif frame.opcode not in (OP_PING, OP_PONG):
                raise ContractBroken(f"a server frame with opcode {frame.opcode:#x}")
        chunk = _read(sock, deadline)
        if chunk is None:
            raise ContractBroken(
                f"no close and no pong within {REPLY_SECONDS}s (well formed: {session.well_formed})"
            )
        if not chunk:
            totals.dropped += 1
            return
        data = chunk


def play_request(
    host: str, port: int, request: bytes, totals: Totals, *, within: float = REPLY_SECONDS
) -> None:
    """Send one raw HTTP request head; the answer must be an HTTP status below 500 or a close,
    `within` seconds."""
    totals.handshakes += 1
    with _connect(host, port) as sock:
        sock.sendall(request)
        deadline = time.monotonic() + within
        data = b""
        while True:
            try:
                parsed = parse_http_head(data)
            except WireViolation as exc:
                raise ContractBroken(str(exc)) from exc
            if parsed is not None:
                break
            chunk = _read(sock, deadline)
            if chunk is None:
                raise ContractBroken(f"no answer to {request[:200]!r}")
            if not chunk:
                totals.dropped += 1
                return
            data += chunk
        totals.statuses[parsed[0].status] += 1
        if parsed[0].status >= 500:
            raise ContractBroken(f"HTTP {parsed[0].status} to {request[:200]!r}")
