"""``gamesync bench SCENARIO [options]``: run a scenario, print a table, write JSON and a PNG."""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from pathlib import Path
from typing import Any

from gamesync.bench.accounting import invariants
from gamesync.bench.scenarios import SCENARIOS, Context, Options

__all__ = ["SIZES", "build_parser", "main", "resolve_options"]


def _ints(text: str) -> list[int]:
    return [int(x.replace("_", "").replace("k", "000")) for x in text.split(",") if x]


def _words(text: str) -> list[str]:
    return [x for x in text.split(",") if x]


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="gamesync bench",
        description="Measure GameSync against its baselines on loopback (see docs/BENCHMARKS.md).",
    )
    p.add_argument("scenario", choices=SCENARIOS)
    p.add_argument(
        "--results",
        type=Path,
        default=Path("bench-results"),
        help="folder for JSON results, plots and logs (default bench-results/)",
    )
    p.add_argument("--runs", type=int, help="repetitions; summaries are medians")
    p.add_argument("--size", type=int, default=2048, help="snapshot size in bytes (default 2048)")
    p.add_argument("--connections", type=_ints, help="fanout/idle: comma list, e.g. 1000,5000")
    p.add_argument("--games", type=int, help="number of games")
    p.add_argument(
        "--deliveries",
        type=int,
        default=100_000,
        help="fanout: deliveries per run (rounds = this / connections)",
    )
    p.add_argument("--clients", type=int, help="latency/peer/slow: websocket clients")
    p.add_argument("--rate", type=float, help="publishes per second")
    p.add_argument("--seconds", type=float, help="length of each publishing window")
    p.add_argument(
        "--max-rate",
        type=float,
        default=0.0,
        help="throughput: stop stepping the rate up beyond this (default: until a window fails)",
    )
    p.add_argument("--gateways", type=int, help="latency/peer: server processes (default 2)")
    p.add_argument(
        "--systems",
        type=_words,
        help="which systems to run (fanout: raw,gamesync; peer: gamesync,socketio; "
        "idle: gamesync[,raw])",
    )
    p.add_argument("--players", type=int, help="polling: players")
    p.add_argument("--poll-interval", type=float, default=3.0, help="polling: seconds (3)")
    p.add_argument(
        "--update-interval",
        type=float,
        default=5.0,
        help="polling: seconds between updates of one game (5)",
    )
    p.add_argument(
        "--slow-games",
        type=int,
        default=30,
        help="slow: games the slow client subscribes to (default 30)",
    )
    p.add_argument("--hold", type=float, default=5.0, help="idle: seconds to hold connections")
    p.add_argument(
        "--settle",
        type=float,
        default=3.0,
        help="idle: seconds between the last connect and the RSS reading (3)",
    )
    p.add_argument("--connect-timeout", type=float, default=120.0)
    p.add_argument(
        "--profile",
        type=float,
        default=0.0,
        help="latency/peer/slow: py-spy the first server for this many seconds "
        "during the first run (needs py-spy)",
    )
    p.add_argument(
        "--window",
        type=int,
        default=8,
        help="fanout: publish requests in flight to the gateway (default 8, so the gateway "
        "never waits for a descheduled publisher; conflated versions are reported as skipped)",
    )
    p.add_argument("--no-plot", action="store_true", help="skip the PNG")
    p.add_argument(
        "--placement",
        choices=("spread", "game"),
        default="spread",
        help="latency/peer/slow: spread each game's watchers over every server (default), "
        "or keep a game's watchers on one server (game-affine routing)",
    )
    p.add_argument(
        "--one-pod",
        action="store_true",
        help="affinity: run only shard 0 of the --gateways fleet, with the clients each "
        "placement gives it, while the whole fleet's rate is published (one pod with a core "
        "of its own)",
    )
    p.add_argument(
        "--keep-awake",
        action="store_true",
        help="affinity: a busy loop at idle priority keeps the servers' CPU from idling "
        "between their wake-ups (a diagnostic of what an idle CPU's wake-up costs)",
    )
    p.add_argument(
        "--gateway-src",
        type=Path,
        help="run the gateway from this source root (e.g. an exported commit) "
        "instead of the installed package",
    )
    p.add_argument(
        "--no-pin",
        action="store_true",
        help="do not pin servers to CPU 0 and load to the other CPUs",
    )
    p.add_argument("--quiet", action="store_true", help="no progress output")
    return p


# The sizes a scenario's registry entry may default (the other flags have one default each).
SIZES = ("runs", "connections", "games", "clients", "rate", "seconds", "gateways", "players")


def resolve_options(args: argparse.Namespace, workdir: Path) -> Options:
    """The options of a run: the flags given, else the scenario's default sizes."""
    defaults = SCENARIOS[args.scenario].defaults
    given = {k: getattr(args, k) for k in SIZES}
    sizes = {
        k: (v if v is not None else defaults[k])
        for k, v in given.items()
        if v is not None or k in defaults
    }
    return Options(
        scenario=args.scenario,
        workdir=workdir,
        size=args.size,
        deliveries=args.deliveries,
        systems=args.systems or [],
        poll_interval=args.poll_interval,
        update_interval=args.update_interval,
        slow_games=args.slow_games,
        window=args.window,
        profile=args.profile,
        settle=args.settle,
        placement=args.placement,
        max_rate=args.max_rate,
        one_pod=args.one_pod,
        keep_awake=args.keep_awake,
        hold=args.hold,
        connect_timeout=args.connect_timeout,
        **sizes,
    )


def main(argv: list[str]) -> int:
    """Entry point of ``gamesync bench``; returns the process exit code."""
    args = build_parser().parse_args(argv)
    try:
        return asyncio.run(_run(args))
    except KeyboardInterrupt:
        return 130


async def _run(args: argparse.Namespace) -> int:
    from gamesync.bench.display import Display
    from gamesync.bench.plots import plot_result
    from gamesync.bench.procs import BenchError
    from gamesync.bench.results import (
        current_loadavg,
        machine_info,
        markdown,
        now_stamp,
        write_result,
    )

    scenario = SCENARIOS[args.scenario]
    started, stamp = now_stamp()
    results_dir: Path = args.results
    workdir = results_dir / f"{args.scenario}-{stamp}"
    opts = resolve_options(args, workdir.resolve())
    display = Display(quiet=args.quiet)
    if args.gateway_src:
        from gamesync.bench.procs import GATEWAY_SOURCE

        GATEWAY_SOURCE["path"] = str(args.gateway_src.resolve())
    if args.no_pin:
        from gamesync.bench.procs import PINNING

        PINNING["enabled"] = False
    # Read before the scenario runs (its load average is the machine's without the benchmark),
    # after the flags that change what it records (gateway source, pinning).
    machine = machine_info()
    display.note(f"gamesync bench {args.scenario}: results in {workdir}")
    try:
        measured = await scenario.run(Context(opts, display))
    except (BenchError, RuntimeError, OSError) as exc:
        print(f"gamesync bench {args.scenario} failed: {exc}", file=sys.stderr)
        return 1
    totals = invariants(measured.runs)
    payload: dict[str, Any] = {
        "schema": 1,
        "scenario": args.scenario,
        "started": started,
        "stamp": stamp,
        "machine": {**machine, "loadavg_at_end": current_loadavg()},
        "params": measured.params,
        "runs": measured.runs,
        "summary": measured.summary,
        "targets": measured.targets,
        "invariants": totals,
        "series": measured.series,
        "plots": [],
    }
    if not args.no_plot:
        png = plot_result(payload, measured.series, results_dir / f"{args.scenario}-{stamp}.png")
        if png is not None:
            payload["plots"].append(str(png))
    path = write_result(results_dir, payload)
    path.with_suffix(".md").write_text(markdown(json.loads(path.read_text()), scenario.columns))
    display.table(
        f"bench {args.scenario}: targets",
        [
            {"target": t.name, "wanted": t.target, "measured": t.value, "met": t.met}
            for t in measured.targets
        ],
        ["target", "wanted", "measured", "met"],
    )
    display.note(f"invariants {totals}; result {path}")
    print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
