"""The load client: one process holding many lean websocket (or HTTP polling) connections.

Run as ``python -m gamesync.bench.loadclient CONFIG_JSON``; it is driven by JSON-line commands
on stdin and answers JSON lines on stdout (lines with an ``event`` key are progress, the others
answer the last command). Each connection is a raw ``asyncio.Protocol``: the handshake, frames
parsed by slicing, pings answered, snapshots counted by ``(connection, game)`` and ``gameVersion``
(duplicates, out-of-order, skipped versions) and timed from the ``t`` in the snapshot data.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import random
import resource
import sys
import time
from dataclasses import asdict, dataclass, field
from typing import Any, cast

from gamesync.bench import wire
from gamesync.bench.accounting import Ledger, Shortfall, shortfall
from gamesync.shards import shard_of

__all__ = ["ClientConfig", "main"]

_GAME_VERSION = b'"gameVersion"'
_GAME_ID = b'"gameId"'
_T = b'"t"'


@dataclass
class ClientConfig:
    """What one load-client process connects to and how."""

    kind: str  # gamesync | raw | socketio | poll
    targets: list[tuple[str, int]]
    count: int
    offset: int = 0
    games: int = 1
    game_base: int = 1
    multi: dict[int, list[int]] = field(default_factory=dict)  # conn index -> its games
    tokens_file: str | None = None
    concurrency: int = 200
    poll_interval: float = 3.0
    placement: str = "spread"  # spread | game | affine (the gateways are shards 0..N-1)
    samples_path: str | None = None
    #: The servers the placement spreads over (0: one per target). With `only` set, this
    #: group opens just the connections the placement gives server `only` of `fleet`, all to
    #: the one target: a single pod of a larger fleet, measured with no other pod beside it.
    fleet: int = 0
    only: int | None = None

    @classmethod
    def from_json(cls, text: str) -> ClientConfig:
        raw = json.loads(text)
        raw["targets"] = [tuple(t) for t in raw["targets"]]
        raw["multi"] = {int(k): v for k, v in raw.get("multi", {}).items()}
        return cls(**raw)

    def games_of(self, index: int) -> list[int]:
        return self.multi.get(index) or [self.game_base + index % self.games]

    @property
    def servers(self) -> int:
        """How many servers the placement spreads the connections over."""
        return self.fleet or len(self.targets)

    def server_of(self, index: int) -> int:
        """The server (0..servers-1) connection `index` goes to under the placement.

        "spread" puts each game's watchers on every server (every server receives every
        game's messages); "game" puts all of a game's watchers on one server, as game-affine
        routing at the ingress would; "affine" puts them on the game's shard (server i is
        shard i of `servers`).
        """
        if self.placement == "affine":
            return shard_of(self.games_of(index)[0], self.servers)
        key = index % self.games if self.placement == "game" else index // self.games
        return key % self.servers


class Conn(asyncio.Protocol):
    """A lean websocket client connection (or an HTTP poller when ``kind`` is ``poll``)."""

    def __init__(self, client: LoadClient, index: int, host: str, port: int) -> None:
        self.client = client
        self.index = index
        self.host = host
        self.port = port
        self.games = client.config.games_of(index)
        self.last: dict[int, int] = {}
        self.transport: asyncio.Transport | None = None
        self.upgraded = False
        self.head = b""
        self.parser = wire.FrameParser()
        self.ready: asyncio.Future[None] = client.loop.create_future()
        self.pending_subs = set(self.games)
        self.close_code: int | None = None
        self.resubscribes = 0
        self.excluded = False
        self.bytes_in = 0
        self.bytes_out = 0
        self.messages = 0
        # polling
        self.etag = b""
        self.poll_handle: asyncio.TimerHandle | None = None
        self.requests = 0
        self.not_modified = 0

    # -- transport callbacks -------------------------------------------------------------
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's is not a subclass
        kind = self.client.config.kind
        if kind == "poll":
            self._set_ready()
            return
        headers: dict[str, str] = {}
        if kind == "socketio":
            path = "/socket.io/?EIO=4&transport=websocket"
        else:
            game = self.games[0]
            path = f"/ws/games/{game}"
            if self.client.config.placement == "affine":
                # Game-affine (DESIGN §2): the game's shard path; target i is shard i.
                path = f"/ws/s/{shard_of(game, self.client.config.servers)}/games/{game}"
            token = self.client.token(self.index)
            if token:
                headers["Authorization"] = f"Bearer {token}"
        self._write(wire.handshake_request(self.host, self.port, path, headers))

    def connection_lost(self, exc: Exception | None) -> None:
        self.transport = None
        if self.poll_handle is not None:
            self.poll_handle.cancel()
        if not self.ready.done():
            self.ready.set_exception(ConnectionError(f"closed before ready ({self.close_code})"))
        self.client.closed[str(self.close_code)] = (
            self.client.closed.get(str(self.close_code), 0) + 1
        )

    def data_received(self, data: bytes) -> None:
        now = time.monotonic()
        self.bytes_in += len(data)
        if self.client.config.kind == "poll":
            self._poll_data(data, now)
            return
        if not self.upgraded:
            data = self._upgrade(data)
            if not data:
                return
        for opcode, payload in self.parser.feed(data):
            if opcode == wire.OP_TEXT:
                self.messages += 1
                self._text(payload, now)
            elif opcode == wire.OP_PING:
                self._write(wire.client_frame(wire.OP_PONG, payload))
            elif opcode == wire.OP_CLOSE:
                self.close_code = wire.close_code(payload)
                self._write(wire.client_frame(wire.OP_CLOSE, payload[:2]))
                if self.transport is not None:
                    self.transport.close()

    # -- websocket -----------------------------------------------------------------------
    def _upgrade(self, data: bytes) -> bytes:
        self.head += data
        end = self.head.find(b"\r\n\r\n")
        if end < 0:
            return b""
        status = self.head[: self.head.find(b"\r\n")]
        rest = self.head[end + 4 :]
        self.head = b""
        if not wire.upgrade_accepted(status):
            if not self.ready.done():
                self.ready.set_exception(ConnectionError(status.decode(errors="replace")))
            if self.transport is not None:
                self.transport.close()
            return b""
        self.upgraded = True
        return rest

    def _text(self, payload: bytes, now: float) -> None:
        kind = self.client.config.kind
        if kind == "socketio":
            if payload[:2] == b"42":
                self._snapshot(payload, now)
            elif payload[:1] == b"2":
                self._send_text(b"3")
            elif payload[:2] == b"0{":
                self._send_text(b'40{"game":%d}' % self.games[0])
            elif payload[:2] == b"40":
                self._set_ready()
            elif payload[:2] == b"44" and not self.ready.done():
                self.ready.set_exception(ConnectionError(payload.decode(errors="replace")))
            return
        if _GAME_VERSION in payload:
            self._snapshot(payload, now)
            return
        try:
            msg = json.loads(payload)
        except ValueError:
            return
        mtype = msg.get("type")
        if mtype == "welcome":
            # At most 30 subscribes a second: the gateway's message bucket holds 40 (burst).
            for i, game in enumerate(self.games[1:]):
                msg = b'{"type":"subscribe","gameId":%d}' % game
                if i < 30:
                    self._send_text(msg)
                else:
                    self.client.loop.call_later(i // 30 * 1.05, self._send_text, msg)
        elif mtype == "subscribed":
            self.pending_subs.discard(msg.get("gameId"))
            if not self.pending_subs:
                self._set_ready()
        elif mtype == "error":
            code = str(msg.get("code"))
            self.client.errors[code] = self.client.errors.get(code, 0) + 1
            game = msg.get("gameId")
            if code == "service_unavailable" and game in self.games and self.resubscribes < 5:
                # What a real client does: the subscription did not happen; ask again shortly.
                self.resubscribes += 1
                self.client.resubscribes += 1
                again = b'{"type":"subscribe","gameId":%d}' % game
                self.client.loop.call_later(random.uniform(0.1, 0.5), self._send_text, again)
            elif not self.ready.done() and self.pending_subs:
                self.ready.set_exception(ConnectionError(f"error {code}"))
        elif mtype == "ping":
            self._send_text(b'{"type":"pong"}')

    def _snapshot(self, payload: bytes, now: float) -> None:
        game = wire.int_field(payload, _GAME_ID)
        version = wire.int_field(payload, _GAME_VERSION)
        if game is None or version is None:
            return
        ledger = self.client.ledger if not self.excluded else self.client.slow_ledger
        if ledger.record(self.last, game, version, now):
            t = wire.float_field(payload, _T)
            if t is not None:
                ledger.samples.append(now - t)

    def _send_text(self, text: bytes) -> None:
        self._write(wire.client_frame(wire.OP_TEXT, text))

    def _write(self, data: bytes) -> None:
        if self.transport is not None and not self.transport.is_closing():
            self.bytes_out += len(data)
            self.transport.write(data)

    def _set_ready(self) -> None:
        if not self.ready.done():
            self.ready.set_result(None)

    # -- HTTP polling (ETag / 304) -------------------------------------------------------
    def start_polling(self, interval: float) -> None:
        self._schedule(random.uniform(0, interval), interval)

    def _schedule(self, delay: float, interval: float) -> None:
        self.poll_handle = self.client.loop.call_later(delay, self._poll, interval)

    def _poll(self, interval: float) -> None:
        if self.transport is None or self.client.stopped:
            return
        request = b"GET /games/%d/snapshot HTTP/1.1\r\nHost: %s:%d\r\n" % (
            self.games[0],
            self.host.encode(),
            self.port,
        )
        if self.etag:
            request += b"If-None-Match: " + self.etag + b"\r\n"
        self._write(request + b"\r\n")
        self.requests += 1
        self._schedule(interval, interval)

    def _poll_data(self, data: bytes, now: float) -> None:
        self.head += data
        while True:
            end = self.head.find(b"\r\n\r\n")
            if end < 0:
                return
            lines = self.head[:end].split(b"\r\n")
            length = 0
            for line in lines[1:]:
                name, _, value = line.partition(b":")
                lname = name.strip().lower()
                if lname == b"content-length":
                    length = int(value)
                elif lname == b"etag":
                    self.etag = value.strip()
            if len(self.head) < end + 4 + length:
                return
            body = self.head[end + 4 : end + 4 + length]
            status = lines[0][9:12]
            self.head = self.head[end + 4 + length :]
            if status == b"304":
                self.not_modified += 1
            elif status == b"200":
                self.messages += 1
                self._snapshot(body, now)


class LoadClient:
    """Holds the connections of one process and answers the orchestrator's commands."""

    def __init__(self, config: ClientConfig) -> None:
        self.config = config
        self.loop = asyncio.get_running_loop()
        self.conns: list[Conn] = []
        self.ledger = Ledger()
        self.slow_ledger = Ledger()
        self.errors: dict[str, int] = {}  # error codes received since the process started
        self.resubscribes = 0
        self.closed: dict[str, int] = {}
        self.stopped = False
        self.polling = False
        self._tokens: list[str] = []
        if config.tokens_file:
            with open(config.tokens_file) as f:
                self._tokens = f.read().split()

    def token(self, index: int) -> str | None:
        return self._tokens[index % len(self._tokens)] if self._tokens else None

    async def connect(self, timeout: float) -> dict[str, Any]:
        started = time.monotonic()
        deadline = started + timeout
        sem = asyncio.Semaphore(self.config.concurrency)
        failures: dict[str, int] = {}
        done = 0

        async def one(i: int) -> None:
            nonlocal done
            index = self.config.offset + i
            server = self.config.server_of(index)
            if self.config.only is None:
                host, port = self.config.targets[server]
            elif server == self.config.only:
                host, port = self.config.targets[0]
            else:
                return  # another pod's connection: not part of this measurement
            async with sem:
                remaining = deadline - time.monotonic()
                try:
                    _, conn = await asyncio.wait_for(
                        self.loop.create_connection(
                            lambda: Conn(self, index, host, port), host, port
                        ),
                        max(0.1, remaining),
                    )
                    self.conns.append(conn)
                    await asyncio.wait_for(conn.ready, max(0.1, deadline - time.monotonic()))
                    done += 1
                except (OSError, TimeoutError, ConnectionError) as exc:
                    reason = type(exc).__name__ + (f": {exc}" if str(exc) else "")
                    failures[reason[:120]] = failures.get(reason[:120], 0) + 1

        async def progress() -> None:
            while True:
                emit({"event": "progress", "done": done})
                await asyncio.sleep(0.25)

        reporter = asyncio.create_task(progress())
        try:
            await asyncio.gather(*(one(i) for i in range(self.config.count)))
        finally:
            reporter.cancel()
        return {
            "connected": done,
            "failed": sum(failures.values()),
            "failures": failures,
            "secs": time.monotonic() - started,
        }

    def begin(self, first: dict[str, int]) -> dict[str, Any]:
        firsts = {int(g): v for g, v in first.items()}
        self.ledger.begin(firsts)
        self.slow_ledger.begin(firsts)
        for conn in self.conns:
            conn.bytes_in = conn.bytes_out = conn.messages = conn.requests = conn.not_modified = 0
        if self.config.kind == "poll" and (self.stopped or not self.polling):
            self.stopped = False
            self.polling = True
            for conn in self.conns:
                conn.start_polling(self.config.poll_interval)
        return {"ok": True}

    def exclude(self, indexes: list[int], stop_reading: bool) -> dict[str, Any]:
        """Keep these connections out of the totals; with ``stop_reading`` they stop reading."""
        wanted = set(indexes)
        paused = 0
        for conn in self.conns:
            if conn.index in wanted and conn.transport is not None:
                conn.excluded = True
                if stop_reading:
                    conn.transport.pause_reading()
                paused += 1
        return {"paused": paused}

    def resume(self) -> dict[str, Any]:
        for conn in self.conns:
            if conn.excluded and conn.transport is not None:
                conn.transport.resume_reading()
        return {"ok": True}

    def _shortfall(self, last: dict[int, int]) -> Shortfall:
        live = ((c.games, c.last) for c in self.conns if not c.excluded)
        return shortfall(live, self.ledger.first, last)

    async def wait(self, last: dict[str, int], timeout: float) -> dict[str, Any]:
        finals = {int(g): v for g, v in last.items()}
        deadline = time.monotonic() + timeout
        while True:
            tally = self._shortfall(finals)
            if tally.lost == 0 or time.monotonic() >= deadline:
                return {
                    "converged": tally.lost == 0,
                    **asdict(tally),
                    "last_rx": self.ledger.last_rx,
                }
            await asyncio.sleep(0.05)

    def report(self, last: dict[str, int]) -> dict[str, Any]:
        self.stopped = True
        finals = {int(g): v for g, v in last.items()}
        tally = self._shortfall(finals)
        led = self.ledger
        if self.config.samples_path:
            with open(self.config.samples_path, "wb") as f:
                led.samples.tofile(f)
        live = [c for c in self.conns if not c.excluded]
        usage = resource.getrusage(resource.RUSAGE_SELF)
        return {
            "connections": len(live),
            "open": sum(1 for c in live if c.transport is not None),
            "delivered": led.delivered,
            "expected": tally.expected,
            "skipped": led.skipped + tally.tail,
            "lost": tally.lost,
            "duplicates": led.duplicates,
            "out_of_order": led.out_of_order,
            "before_range": led.before_range,
            "last_rx": led.last_rx,
            "samples": len(led.samples),
            "messages": sum(c.messages for c in live),
            "requests": sum(c.requests for c in live),
            "not_modified": sum(c.not_modified for c in live),
            "bytes_in": sum(c.bytes_in for c in live),
            "bytes_out": sum(c.bytes_out for c in live),
            "errors": dict(self.errors),
            "resubscribes": self.resubscribes,
            "closed": dict(self.closed),
            "slow": [
                {
                    "index": c.index,
                    "open": c.transport is not None,
                    "close_code": c.close_code,
                    "delivered": self.slow_ledger.delivered,
                    "skipped": self.slow_ledger.skipped,
                    "duplicates": self.slow_ledger.duplicates,
                    "out_of_order": self.slow_ledger.out_of_order,
                    "bytes_in": c.bytes_in,
                }
                for c in self.conns
                if c.excluded
            ],
            "cpu_seconds": usage.ru_utime + usage.ru_stime,
        }

    def close(self) -> None:
        for conn in self.conns:
            if conn.transport is not None:
                conn.transport.abort()


def emit(obj: dict[str, Any]) -> None:
    sys.stdout.write(json.dumps(obj) + "\n")
    sys.stdout.flush()


async def _serve(config: ClientConfig) -> None:
    client = LoadClient(config)
    reader = asyncio.StreamReader()
    await client.loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    emit({"event": "ready"})
    try:
        while True:
            line = await reader.readline()
            if not line:
                break
            cmd = json.loads(line)
            name = cmd.get("cmd")
            if name == "connect":
                emit(await client.connect(float(cmd.get("timeout", 60))))
            elif name == "begin":
                emit(client.begin(cmd.get("first", {})))
            elif name == "exclude":
                emit(client.exclude(cmd["conns"], bool(cmd.get("stop_reading", True))))
            elif name == "resume":
                emit(client.resume())
            elif name == "wait":
                emit(await client.wait(cmd.get("last", {}), float(cmd.get("timeout", 5))))
            elif name == "report":
                emit(client.report(cmd.get("last", {})))
            elif name == "quit":
                emit({"ok": True})
                break
            else:
                emit({"error": f"unknown command {name!r}"})
    finally:
        client.close()


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    config = ClientConfig.from_json(args[0])
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    with contextlib.suppress(ValueError, OSError):
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    try:
        import uvloop
    except ImportError:  # pragma: no cover - uvloop is a runtime dependency on Linux
        asyncio.run(_serve(config))
    else:
        uvloop.run(_serve(config))
    return 0


if __name__ == "__main__":
    sys.exit(main())
