"""``bandwidth``: protocol 2's delta snapshots next to full snapshots and 3-second ETag polling.

Two streams, replayed from a seeded `DemoGame` (the ``--demo`` Nomination Whist table, one
commit a second as the dev gateway plays it): ``demo``, its snapshots as they are, and
``nommie8k``, the same with the game's trick history (the last 80 tricks), about 8 KB as
Nommie's snapshot with history. Three same-run comparisons:

- formats: the public part's bytes and CPU per version for the JSON Patch the gateway sends
  next to the candidates it was chosen over (:mod:`gamesync.bench.deltaformats`);
- wire: bytes on the wire per player-minute, all four seats, through a real gateway: a version-1
  client (full snapshots), a version-2 client (deltas), and an ETag poller every
  ``--poll-interval`` seconds against the polling baseline server;
- cpu: the gateway's CPU per delivered update with ``--clients`` subscribers of one
  ``nommie8k`` game (four players, the rest watching), full snapshots and deltas alternating,
  ``--runs`` times each; the target is a ratio of medians.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import re
import statistics
import time
from collections.abc import Callable
from typing import Any

import httpx

from gamesync import jsoncodec
from gamesync.bench import wire
from gamesync.bench.deltaformats import fossil_delta, merge_patch
from gamesync.bench.procs import BenchError
from gamesync.bench.results import Target, median
from gamesync.bench.rig import Rig, Server
from gamesync.bench.scenarios.contract import Context, Measurement, Scenario
from gamesync.delta import diff
from gamesync.demo import DemoGame

__all__ = ["SCENARIO", "demo_stream", "nommie_stream"]

#: The demo gateway's pace: one commit a second.
COMMITS_PER_MINUTE = 60
#: Versions of each stream measured (after a warm-up into the first game's rounds).
VERSIONS = 240
WARM_UP = 60
#: Versions published per CPU run (120: a run's gateway CPU is well above the clock's 10 ms tick).
CPU_VERSIONS = 120
#: Tricks of history in a nommie8k snapshot.
HISTORY = 80
SEATS = 4


def demo_stream(count: int, seed: int = 1, *, history: int = 0) -> list[dict[str, Any]]:
    """`count` envelopes of the demo table after the warm-up; with `history`, each snapshot
    also carries the game's last `history` tricks (the warm-up then lasts until there are as
    many). Viewers are keyed by the bench's users."""
    game = DemoGame(1, seed=seed, clock=lambda: 1_000_000.0)
    warm_up = WARM_UP + history * 5  # a trick is about five commits (four cards, a bid)
    tricks: list[dict[str, Any]] = []
    out: list[dict[str, Any]] = []
    for step in range(warm_up + count):
        envelope = game.step()
        snapshot = envelope["snapshot"]
        data = snapshot["phase"].get("data") or {}
        last = data.get("last_trick")
        if history and last is not None and (not tricks or tricks[-1]["trick"] != last):
            tricks.append({"round": snapshot["game"]["round_no"], "trick": last, **last})
            del tricks[:-history]
        if history:
            snapshot["history"] = [{k: v for k, v in t.items() if k != "trick"} for t in tricks]
        envelope["viewers"] = {f"u{i}": envelope["viewers"][str(i + 1)] for i in range(SEATS)}
        envelope.pop("members", None)
        if step >= warm_up:
            out.append(envelope)
    return out


def nommie_stream(count: int, seed: int = 1) -> list[dict[str, Any]]:
    return demo_stream(count, seed, history=HISTORY)


STREAMS: dict[str, Callable[[int], list[dict[str, Any]]]] = {
    "demo": demo_stream,
    "nommie8k": nommie_stream,
}


# formats ---------------------------------------------------------------------------------------


def measure_formats(stream: list[dict[str, Any]]) -> dict[str, dict[str, float]]:
    """Per version: the public part's bytes in each format and the CPU to make it (from the two
    snapshots' JSON, as the gateway holds them: decode, compare, encode)."""
    raw = [jsoncodec.dumps(e["snapshot"]) for e in stream]
    pairs = list(itertools.pairwise(raw))

    def json_patch(a: bytes, b: bytes) -> bytes:
        return jsoncodec.dumps(diff(jsoncodec.loads(a), jsoncodec.loads(b)))

    def merge(a: bytes, b: bytes) -> bytes:
        return jsoncodec.dumps(merge_patch(jsoncodec.loads(a), jsoncodec.loads(b)))

    def fossil(a: bytes, b: bytes) -> bytes:
        return jsoncodec.dumps(fossil_delta(a, b).decode())  # as a JSON string in a message

    result: dict[str, dict[str, float]] = {
        "full": {"bytes": statistics.fmean(len(b) for b in raw[1:]), "us": 0.0}
    }
    for name, encode in (("json_patch", json_patch), ("merge_patch", merge), ("fossil", fossil)):
        sizes = 0
        started = time.process_time()
        for a, b in pairs:
            sizes += len(encode(a, b))
        spent = time.process_time() - started
        result[name] = {
            "bytes": round(sizes / len(pairs), 1),
            "us": round(spent / len(pairs) * 1e6, 1),
        }
    return result


# the wire --------------------------------------------------------------------------------------


_VERSION = re.compile(rb'"gameVersion":(\d+)')


#: Seconds between a Counted client's unsolicited pongs (RFC 6455 §5.5.3: a one-way heartbeat).
KEEPALIVE_SECONDS = 5.0


class Counted:
    """A raw websocket client that only counts what it receives and spots a version in it.

    It never parses frames, so it cannot answer the gateway's pings; an unsolicited pong every
    few seconds shows it alive instead (any frame does, DESIGN §2), so that a thousand of them
    opened one by one on a busy machine are not closed 4408 before the last one is up.
    """

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer
        self.received = 0
        self.sent = 0
        self.latest = -1
        self._tail = b""
        self._versions: dict[int, asyncio.Event] = {}
        loop = asyncio.get_running_loop()
        self._task = loop.create_task(self._read())
        self._keepalive = loop.create_task(self._beat())

    @classmethod
    async def open(cls, port: int, path: str, token: str) -> Counted:
        reader, writer = await asyncio.open_connection("127.0.0.1", port, limit=1 << 20)
        request = wire.handshake_request(
            "127.0.0.1", port, path, {"Authorization": f"Bearer {token}"}
        )
        writer.write(request)
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 10)
        if not wire.upgrade_accepted(head.split(b"\r\n", 1)[0]):
            raise BenchError(f"upgrade refused: {head[:80]!r}")
        counted = cls(reader, writer)
        counted.sent = len(request)
        return counted

    def expect(self, version: int) -> asyncio.Event:
        """An event set once a frame of `version` (or a later one) arrived."""
        event = self._versions.setdefault(version, asyncio.Event())
        if self.latest >= version:
            event.set()
        return event

    async def _read(self) -> None:
        with contextlib.suppress(ConnectionError, asyncio.IncompleteReadError):
            while True:
                data = await self.reader.read(1 << 16)
                if not data:
                    return
                self.received += len(data)
                seen = self._tail + data
                self._tail = seen[-40:]
                found = _VERSION.findall(seen)
                if found:
                    self.latest = max(self.latest, *(int(v) for v in found))
                    for version, event in list(self._versions.items()):
                        if version <= self.latest:
                            event.set()
                            del self._versions[version]

    async def _beat(self) -> None:
        pong = wire.client_frame(0xA, b"")
        with contextlib.suppress(ConnectionError):
            while not self.writer.is_closing():
                await asyncio.sleep(KEEPALIVE_SECONDS)
                self.writer.write(pong)
                self.sent += len(pong)

    async def close(self) -> None:
        self._task.cancel()
        self._keepalive.cancel()
        self.writer.close()
        for task in (self._task, self._keepalive):
            with contextlib.suppress(Exception, asyncio.CancelledError):
                await task


async def _publish(client: httpx.AsyncClient, envelope: dict[str, Any]) -> None:
    response = await client.post(
        f"/v1/games/{envelope['gameId']}/snapshots", content=jsoncodec.dumps(envelope)
    )
    if response.status_code != 200:
        raise BenchError(f"publish answered {response.status_code}: {response.text[:200]}")


async def _deliver(
    client: httpx.AsyncClient, envelope: dict[str, Any], readers: list[Counted]
) -> None:
    """Publish one version and wait until every reader has it (no conflation, bounded)."""
    waits = [r.expect(envelope["version"]) for r in readers]
    await _publish(client, envelope)
    async with asyncio.timeout(20):
        await asyncio.gather(*(w.wait() for w in waits))


async def _poll_bytes(
    port: int, stream: list[dict[str, Any]], tokens: list[str], every: int
) -> tuple[float, float]:
    """(down, up) bytes per poll of an ETag poller, each seat polling its own view."""
    down = up = polls = 0
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=10) as http:
        etags: dict[int, str] = {}
        connections = [await asyncio.open_connection("127.0.0.1", port) for _ in range(SEATS)]
        try:
            for index, envelope in enumerate(stream):
                for seat in range(SEATS):
                    body = {
                        "gameVersion": envelope["version"],
                        "version": envelope["version"],
                        "data": envelope["snapshot"],
                        "viewer": envelope["viewers"][f"u{seat}"],
                    }
                    await http.post(f"/games/{100 + seat}/publish", content=json.dumps(body))
                if index % every:
                    continue
                for seat, (reader, writer) in enumerate(connections):
                    request = (
                        f"GET /games/{100 + seat}/snapshot HTTP/1.1\r\n"
                        f"Host: 127.0.0.1:{port}\r\nAccept: application/json\r\n"
                        f"Authorization: Bearer {tokens[seat]}\r\n"
                        + (f"If-None-Match: {etags[seat]}\r\n" if seat in etags else "")
                        + "\r\n"
                    ).encode()
                    writer.write(request)
                    head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 10)
                    length = 0
                    for line in head.split(b"\r\n")[1:]:
                        name, _, value = line.partition(b":")
                        if name.lower() == b"content-length":
                            length = int(value)
                        elif name.lower() == b"etag":
                            etags[seat] = value.strip().decode()
                    await reader.readexactly(length)
                    down += len(head) + length
                    up += len(request)
                    polls += 1
        finally:
            for _, writer in connections:
                writer.close()
    return down / polls, up / polls


async def measure_wire(
    rig: Rig,
    gateway: Server,
    poll: Server,
    name: str,
    stream: list[dict[str, Any]],
    tokens: list[str],
    poll_interval: float,
    publish_token: str,
) -> list[dict[str, Any]]:
    """Rows of bytes per player-minute for full snapshots, deltas and polling, on `stream`."""
    game_id = 1 if name == "demo" else 2
    stream = [{**e, "gameId": game_id} for e in stream]
    async with httpx.AsyncClient(
        base_url=f"http://127.0.0.1:{gateway.internal_port}",
        headers={"Authorization": f"Bearer {publish_token}"},
        timeout=10,
    ) as http:
        await _publish(http, stream[0])
        modes: dict[str, list[Counted]] = {"full": [], "delta": []}
        for mode, query in (("full", ""), ("delta", "?delta=1")):
            for seat in range(SEATS):
                path = f"/ws/games/{game_id}{query}"
                modes[mode].append(await Counted.open(gateway.port, path, tokens[seat]))
        everyone = modes["full"] + modes["delta"]
        async with asyncio.timeout(20):
            await asyncio.gather(*(r.expect(stream[0]["version"]).wait() for r in everyone))
        before = {id(r): r.received for r in everyone}
        for envelope in stream[1:]:
            await _deliver(http, envelope, everyone)
        rows = []
        versions = len(stream) - 1
        for mode, readers in modes.items():
            per_version = statistics.fmean(r.received - before[id(r)] for r in readers) / versions
            rows.append(_row(name, mode, per_version, 0.0, COMMITS_PER_MINUTE))
        for r in everyone:
            await r.close()
    every = max(1, round(poll_interval * COMMITS_PER_MINUTE / 60))
    down, up = await _poll_bytes(poll.port, stream, tokens, every)
    rows.append(_row(name, "poll", down, up, 60 / poll_interval))
    return rows


def _row(stream: str, mode: str, down: float, up: float, per_minute: float) -> dict[str, Any]:
    return {
        "part": "wire",
        "stream": stream,
        "mode": mode,
        "down_per_message": round(down, 1),
        "up_per_message": round(up, 1),
        "kib_per_player_minute": round((down + up) * per_minute / 1024, 2),
    }


# CPU at fan-out --------------------------------------------------------------------------------


async def measure_cpu(
    gateway: Server,
    stream: list[dict[str, Any]],
    tokens: list[str],
    mode: str,
    game_id: int,
    publish_token: str,
) -> dict[str, Any]:
    """The gateway's CPU per delivered update for ``len(tokens)`` subscribers of one game."""
    query = "?delta=1" if mode == "delta" else ""
    stream = [{**e, "gameId": game_id} for e in stream]
    async with httpx.AsyncClient(
        base_url=f"http://127.0.0.1:{gateway.internal_port}",
        headers={"Authorization": f"Bearer {publish_token}"},
        timeout=10,
    ) as http:
        await _publish(http, stream[0])
        readers = []
        try:
            for token in tokens:
                readers.append(
                    await Counted.open(gateway.port, f"/ws/games/{game_id}{query}", token)
                )
            async with asyncio.timeout(60):
                await asyncio.gather(*(r.expect(stream[0]["version"]).wait() for r in readers))
            received = sum(r.received for r in readers)
            cpu0 = gateway.proc.cpu()
            for envelope in stream[1:]:
                await _deliver(http, envelope, readers)
            cpu = gateway.proc.cpu() - cpu0
            received = sum(r.received for r in readers) - received
        finally:
            for r in readers:
                await r.close()
    deliveries = len(readers) * (len(stream) - 1)
    return {
        "part": "cpu",
        "mode": mode,
        "clients": len(readers),
        "deliveries": deliveries,
        "server_cpu_s": round(cpu, 3),
        "cpu_us_per_delivery": round(cpu / deliveries * 1e6, 2),
        "bytes_per_delivery": round(received / deliveries, 1),
    }


# the scenario ----------------------------------------------------------------------------------


async def run(ctx: Context) -> Measurement:
    opts = ctx.opts
    clients = opts.clients
    creds = ctx.credentials(max(SEATS, clients))
    tokens = creds.tokens_path.read_text().split()
    streams = {name: make(VERSIONS) for name, make in STREAMS.items()}
    rows: list[dict[str, Any]] = []
    for name, stream in streams.items():
        formats = [measure_formats(stream) for _ in range(opts.runs)]
        merged = {
            f: {k: median([run[f][k] for run in formats]) for k in ("bytes", "us")}
            for f in formats[0]
        }
        rows.append({"part": "formats", "stream": name, **merged})
        ctx.display.note(f"formats {name}: " + ", ".join(f"{f} {v}" for f, v in merged.items()))
    async with Rig(opts.workdir, creds) as rig:
        gateway = await rig.gateway()
        poll = await rig.pollserver()
        for name, stream in streams.items():
            wire_rows = await measure_wire(
                rig, gateway, poll, name, stream, tokens, opts.poll_interval, creds.publish_token
            )
            rows += wire_rows
            ctx.display.note(
                f"wire {name}: "
                + ", ".join(f"{r['mode']} {r['kib_per_player_minute']} KiB" for r in wire_rows)
            )
        cpu_stream = nommie_stream(CPU_VERSIONS + 1, seed=2)
        for run_no in range(opts.runs):
            for mode in ("full", "delta") if run_no % 2 == 0 else ("delta", "full"):
                game_id = 10 + 2 * run_no + (mode == "delta")  # a fresh game each time
                row = await measure_cpu(
                    gateway, cpu_stream, tokens[:clients], mode, game_id, creds.publish_token
                )
                row["run"] = run_no + 1
                rows.append(row)
                ctx.display.note(
                    f"cpu {mode} run {run_no + 1}: {row['cpu_us_per_delivery']} us/delivery, "
                    f"{row['bytes_per_delivery']} B/delivery"
                )
    summary, targets = _summarise(rows)
    params = {
        "runs": opts.runs,
        "clients": clients,
        "poll_interval": opts.poll_interval,
        "versions": VERSIONS,
        "cpu_versions": CPU_VERSIONS,
        "history": HISTORY,
    }
    return Measurement(params, rows, summary, targets)


def _summarise(rows: list[dict[str, Any]]) -> tuple[dict[str, Any], list[Target]]:
    summary: dict[str, Any] = {}
    targets: list[Target] = []
    for name in STREAMS:
        wire_rows = {r["mode"]: r for r in rows if r["part"] == "wire" and r["stream"] == name}
        full = wire_rows["full"]["kib_per_player_minute"]
        delta = wire_rows["delta"]["kib_per_player_minute"]
        share = delta / full if full else 0.0
        summary[name] = {
            "kib_per_player_minute": {m: r["kib_per_player_minute"] for m, r in wire_rows.items()},
            "delta_share_of_full": round(share, 3),
        }
        targets.append(
            Target(
                f"bandwidth {name}: delta vs full snapshots",
                "≤ 25 % of the full snapshots' bytes",
                f"{share:.1%} ({delta} vs {full} KiB per player-minute)",
                share <= 0.25,
            )
        )
    cpu = {
        mode: median(
            [r["cpu_us_per_delivery"] for r in rows if r.get("mode") == mode and r["part"] == "cpu"]
        )
        for mode in ("full", "delta")
    }
    ratio = cpu["delta"] / cpu["full"] if cpu["full"] else 0.0
    summary["cpu_us_per_delivery"] = cpu
    summary["cpu_ratio"] = round(ratio, 3)
    targets.append(
        Target(
            "bandwidth: gateway CPU per delivered update, deltas vs full, at fan-out",
            "≤ 1.1x",
            f"{ratio:.2f}x ({cpu['delta']} vs {cpu['full']} us per delivery)",
            ratio <= 1.1,
        )
    )
    return summary, targets


SCENARIO = Scenario(
    name="bandwidth",
    run=run,
    defaults={"runs": 3, "clients": 1000},
    columns=(
        "part",
        "stream",
        "mode",
        "run",
        "down_per_message",
        "up_per_message",
        "kib_per_player_minute",
        "cpu_us_per_delivery",
        "bytes_per_delivery",
    ),
)
