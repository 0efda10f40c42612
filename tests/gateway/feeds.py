"""One client interface over both transports, for the tests of DESIGN §2's guarantees.

A `Feed` is a websocket (the `websockets` client) or an SSE stream read from a raw socket: an
HTTP/1.1 request, then the chunked body parsed into events. The raw socket reads only when told
to, so an SSE feed can also play a client that stopped reading (a small receive buffer and no
reads). Either way, `recv` gives the next server message and `close_code` the code the server
closed with (an SSE stream's last event carries it).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket
from collections import deque
from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit

import websockets
from rawws import RawClient
from websockets.asyncio.client import ClientConnection

from gamesync.bench import wire
from gamesync.server import GatewayServer

TRANSPORTS = ("websocket", "sse")


class FeedClosed(Exception):
    """The server ended the connection; `code` is its close code (None: no code seen)."""

    def __init__(self, code: int | None) -> None:
        super().__init__(f"closed with {code}")
        self.code = code


class Feed:
    """The next server message, the close code; the same for both transports."""

    transport = ""

    async def recv(self, timeout: float = 5.0) -> dict[str, Any]:
        raise NotImplementedError

    async def send(self, message: dict[str, Any]) -> None:
        """Send a client message (websocket only: an SSE client cannot send anything)."""
        raise NotImplementedError

    async def aclose(self) -> None:
        raise NotImplementedError

    async def until(
        self, predicate: Callable[[dict[str, Any]], bool], timeout: float = 5.0
    ) -> dict[str, Any]:
        """Skip messages until one matches `predicate`."""
        async with asyncio.timeout(timeout):
            while True:
                message = await self.recv(timeout)
                if predicate(message):
                    return message

    async def close_code(self, timeout: float = 5.0) -> int | None:
        """Read until the server closes; the code it closed with."""
        async with asyncio.timeout(timeout):
            try:
                while True:
                    await self.recv(timeout)
            except FeedClosed as closed:
                return closed.code

    async def __aenter__(self) -> Feed:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()


class WebSocketFeed(Feed):
    transport = "websocket"

    def __init__(self, ws: ClientConnection) -> None:
        self.ws = ws

    async def recv(self, timeout: float = 5.0) -> dict[str, Any]:
        try:
            async with asyncio.timeout(timeout):
                raw = await self.ws.recv(decode=True)
        except websockets.ConnectionClosed:
            raise FeedClosed(self.ws.close_code) from None
        message = json.loads(raw)
        assert isinstance(message, dict)
        return message

    async def send(self, message: dict[str, Any]) -> None:
        await self.ws.send(json.dumps(message))

    async def aclose(self) -> None:
        await self.ws.close()


class RawWebSocketFeed(Feed):
    """A websocket on a raw socket (`rawws`): it reads only when told, never answers pings."""

    transport = "websocket"

    def __init__(self, client: RawClient) -> None:
        self.client = client
        self.pings = 0
        self.closed_with: int | None = None

    async def recv(self, timeout: float = 5.0) -> dict[str, Any]:
        async with asyncio.timeout(timeout):
            while True:
                if self.closed_with is not None:
                    raise FeedClosed(self.closed_with)
                try:
                    frame = await self.client.read_frame(timeout)
                except asyncio.IncompleteReadError:
                    raise FeedClosed(None) from None
                if frame.opcode == wire.OP_PING:
                    self.pings += 1
                elif frame.opcode == wire.OP_CLOSE:
                    self.closed_with = frame.close_code
                elif frame.opcode == wire.OP_TEXT:
                    message = json.loads(frame.payload)
                    assert isinstance(message, dict)
                    return message

    async def send(self, message: dict[str, Any]) -> None:
        self.client.send_text(json.dumps(message))

    async def aclose(self) -> None:
        self.client.close()


class SseFeed(Feed):
    """An event stream on a raw socket: HTTP/1.1 chunked, `data:` events, `:` comments."""

    transport = "sse"

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer
        self.status = 0
        self.headers: dict[str, str] = {}
        self.body = b""  # the body of a refusal (not an event stream)
        self.comments = 0
        self.events: deque[dict[str, Any]] = deque()
        self.closed_with: int | None = None
        self.ended = False
        self._chunks = b""
        self._text = b""
        self._data: list[bytes] = []

    @classmethod
    async def open(
        cls,
        host: str,
        port: int,
        path: str,
        token: str | None,
        *,
        rcvbuf: int | None = None,
        headers: dict[str, str] | None = None,
        method: str = "GET",
    ) -> SseFeed:
        if rcvbuf is not None:
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
            sock.setblocking(False)
            await asyncio.get_running_loop().sock_connect(sock, (host, port))
            reader, writer = await asyncio.open_connection(sock=sock, limit=1 << 20)
        else:
            reader, writer = await asyncio.open_connection(host, port, limit=1 << 20)
        sent = {"Host": f"{host}:{port}", "Accept": "text/event-stream"}
        if token:
            sent["Authorization"] = f"Bearer {token}"
        sent.update(headers or {})
        lines = [f"{method} {path} HTTP/1.1", *(f"{k}: {v}" for k, v in sent.items()), "", ""]
        writer.write("\r\n".join(lines).encode())
        await writer.drain()
        feed = cls(reader, writer)
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
        status_line, *header_lines = head.decode("latin-1").split("\r\n")
        feed.status = int(status_line.split()[1])
        for line in header_lines:
            if line:
                name, _, value = line.partition(":")
                feed.headers[name.strip().lower()] = value.strip()
        if feed.headers.get("content-type", "").startswith("text/event-stream"):
            assert feed.headers.get("transfer-encoding") == "chunked"
        else:
            length = int(feed.headers.get("content-length", "0"))
            feed.body = await asyncio.wait_for(reader.readexactly(length), 5)
            feed.ended = True
        return feed

    async def recv(self, timeout: float = 5.0) -> dict[str, Any]:
        async with asyncio.timeout(timeout):
            while not self.events:
                if self.ended:
                    raise FeedClosed(self.closed_with)
                data = await self.reader.read(1 << 16)
                if not data:
                    self.ended = True
                    continue
                self._feed(data)
            return self.events.popleft()

    async def wait_comments(self, count: int, timeout: float = 5.0) -> None:
        """Read until `count` comments (heartbeats) arrived; events read meanwhile are kept."""
        async with asyncio.timeout(timeout):
            while self.comments < count:
                if self.ended:
                    raise FeedClosed(self.closed_with)
                data = await self.reader.read(1 << 16)
                if not data:
                    self.ended = True
                    continue
                self._feed(data)

    async def send(self, message: dict[str, Any]) -> None:
        raise AssertionError("an SSE client cannot send messages")

    async def aclose(self) -> None:
        with contextlib.suppress(Exception):
            self.writer.transport.abort()

    def close(self) -> None:
        self.writer.transport.abort()

    def _feed(self, data: bytes) -> None:
        """Decode HTTP/1.1 chunks (RFC 9112 §7.1), then SSE lines (WHATWG HTML §9.2.6)."""
        self._chunks += data
        while True:
            size_end = self._chunks.find(b"\r\n")
            if size_end < 0:
                return
            size = int(self._chunks[:size_end], 16)
            if size == 0:
                if len(self._chunks) >= size_end + 4:
                    self.ended = True
                return
            if len(self._chunks) < size_end + 2 + size + 2:
                return
            body = self._chunks[size_end + 2 : size_end + 2 + size]
            assert self._chunks[size_end + 2 + size : size_end + 4 + size] == b"\r\n"
            self._chunks = self._chunks[size_end + 4 + size :]
            self._lines(body)

    def _lines(self, body: bytes) -> None:
        self._text += body
        while b"\n" in self._text:
            line, self._text = self._text.split(b"\n", 1)
            if line == b"":
                if self._data:
                    message = json.loads(b"\n".join(self._data))
                    self._data = []
                    if message["type"] == "close":
                        self.closed_with = message["code"]
                    else:
                        self.events.append(message)
            elif line.startswith(b":"):
                self.comments += 1
            elif line.startswith(b"data:"):
                value = line[5:]
                self._data.append(value[1:] if value.startswith(b" ") else value)
            else:
                raise AssertionError(f"unexpected SSE line {line!r}")


def address(server: GatewayServer) -> tuple[str, int]:
    parts = urlsplit(server.public_url)
    assert parts.hostname is not None
    assert parts.port is not None
    return parts.hostname, parts.port


async def open_feed(
    server: GatewayServer,
    transport: str,
    token: str | None,
    games: int | list[int] | None = None,
    *,
    rcvbuf: int | None = None,
    headers: dict[str, str] | None = None,
    query: str = "",
    raw: bool = False,
) -> Feed:
    """A client of `transport` for `games`: one game is the URL's (`/ws/games/1`,
    `/sse/games/1`); a list is a websocket's `subscribe` messages or `/sse?games=1,2`.

    `raw` (or `rcvbuf`): a client that reads only when the test does, on a raw socket (SSE
    feeds always are).
    """
    if transport == "sse":
        if isinstance(games, int):
            path = f"/sse/games/{games}"
        else:
            path = "/sse?games=" + ",".join(str(g) for g in games or [])
        if query:
            path += ("&" if "?" in path else "?") + query
        host, port = address(server)
        return await SseFeed.open(host, port, path, token, rcvbuf=rcvbuf, headers=headers)
    path = f"/ws/games/{games}" if isinstance(games, int) else "/ws"
    if query:
        path += "?" + query
    feed: Feed
    if raw or rcvbuf is not None:
        host, port = address(server)
        client = await RawClient.connect(host, port, path, token, rcvbuf=rcvbuf, headers=headers)
        feed = RawWebSocketFeed(client)
    else:
        url = server.public_url.replace("http://", "ws://") + path
        sent = {"Authorization": f"Bearer {token}"} if token else {}
        ws = await websockets.connect(
            url, additional_headers={**sent, **(headers or {})}, open_timeout=5, max_size=None
        )
        feed = WebSocketFeed(ws)
    if isinstance(games, list):
        for game_id in games:
            await feed.send({"type": "subscribe", "gameId": game_id})
    return feed
