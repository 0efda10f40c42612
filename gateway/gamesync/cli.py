"""The `gamesync` command line (DESIGN §6)."""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import sys
from pathlib import Path
from typing import Any

from gamesync import __version__
from gamesync.errors import GameSyncError

__all__ = ["main"]


def _gateway_parser(sub: Any) -> None:
    p = sub.add_parser(
        "gateway",
        help="run a websocket gateway",
        description="Every flag also reads GAMESYNC_<FLAG> from the environment; flags win.",
    )
    p.add_argument("--host")
    p.add_argument("--port", type=int)
    p.add_argument("--internal-port", type=int)
    p.add_argument(
        "--broker", help="memory:// | redis://HOST:PORT/DB | rediss://... | redis+cluster://H:P,H:P"
    )
    p.add_argument("--keys", type=Path, help="JWKS file of verification keys (omit for dev mode)")
    p.add_argument("--publish-token", help="bearer token for POST /v1/games/{id}/snapshots")
    p.add_argument("--audience")
    p.add_argument("--issuer")
    p.add_argument("--authz", choices=["open", "claim", "members", "backend"])
    p.add_argument(
        "--authz-url", help="backend policy: URL answering 2xx for allowed users ({gameId})"
    )
    p.add_argument("--allowed-origins", help="comma-separated browser origins")
    p.add_argument("--runtime-config", type=Path)
    p.add_argument("--demo", action="store_true", default=None, help="publish a simulated game")
    p.add_argument("--ping-interval", type=float)
    p.add_argument("--ping-timeout", type=float)
    p.add_argument("--idle-timeout", type=float)
    p.add_argument("--drain-seconds", type=float)
    p.add_argument("--pod-name")
    p.add_argument("--log-format", choices=["json", "text"], help="default: json, text in dev mode")


def _run_gateway(args: argparse.Namespace) -> int:
    from gamesync.logs import configure_logging
    from gamesync.server import serve
    from gamesync.settings import load_settings

    fields = (
        "host",
        "port",
        "internal_port",
        "broker",
        "keys",
        "publish_token",
        "audience",
        "issuer",
        "authz",
        "authz_url",
        "allowed_origins",
        "runtime_config",
        "demo",
        "ping_interval",
        "ping_timeout",
        "idle_timeout",
        "drain_seconds",
        "pod_name",
        "log_format",
    )
    settings = load_settings(**{f: getattr(args, f) for f in fields})
    fmt = settings.log_format or ("text" if settings.dev_mode else "json")
    configure_logging(args.log_level, fmt)
    try:
        import uvloop

        return uvloop.run(serve(settings))
    except ImportError:  # pragma: no cover - uvloop is a dependency on Linux
        return asyncio.run(serve(settings))


def _run_keys(args: argparse.Namespace) -> int:
    from gamesync.keys import write_key_dir

    jwks, signer = write_key_dir(args.dir, args.alg)
    print(f"wrote {jwks} (public, for gateways) and {signer} (private, for signers)")
    return 0


def _run_token(args: argparse.Namespace) -> int:
    from gamesync.keys import load_signer, sign_token

    signer = load_signer(args.signer)
    games = [int(g) for g in args.games.split(",") if g.strip()] if args.games else None
    print(sign_token(signer, args.sub, ttl=args.ttl, aud=args.aud, iss=args.iss, games=games))
    return 0


def _run_publish(args: argparse.Namespace) -> int:
    from gamesync.publish_cli import publish_file

    result = publish_file(
        args.game_id,
        args.envelope,
        broker=args.broker,
        url=args.url,
        publish_token=args.publish_token,
    )
    print(json.dumps({"published": result}))
    return 0


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="gamesync", description="GameSync realtime game-state gateway"
    )
    parser.add_argument("--version", action="version", version=f"gamesync {__version__}")
    parser.add_argument(
        "--log-level", default="info", choices=["debug", "info", "warning", "error"]
    )
    sub = parser.add_subparsers(dest="command", required=True)
    _gateway_parser(sub)
    sub.add_parser(
        "operator", help="run the kopf operator (gamesync operator --help)", add_help=False
    )
    keys = sub.add_parser("keys", help="manage signing keys")
    keys_sub = keys.add_subparsers(dest="keys_command", required=True)
    gen = keys_sub.add_parser(
        "generate", help="write DIR/jwks.json (public) and DIR/signer.json (private)"
    )
    gen.add_argument("--alg", default="ES256", choices=["ES256", "EdDSA", "RS256", "HS256"])
    gen.add_argument("--dir", type=Path, required=True)
    tok = sub.add_parser("token", help="sign a token with a signer file's active key")
    tok.add_argument("--signer", type=Path, required=True)
    tok.add_argument("--sub", required=True)
    tok.add_argument("--ttl", type=int, default=3600)
    tok.add_argument("--aud")
    tok.add_argument("--iss")
    tok.add_argument("--games", help="comma-separated game ids for the claim policy")
    pub = sub.add_parser("publish", help="publish an envelope file")
    pub.add_argument("game_id", type=int)
    pub.add_argument("envelope", type=Path)
    target = pub.add_mutually_exclusive_group(required=True)
    target.add_argument(
        "--broker", help="publish straight to Redis (redis://... or redis+cluster://...)"
    )
    target.add_argument("--url", help="a gateway's internal URL, e.g. http://127.0.0.1:9000")
    pub.add_argument("--publish-token", help="needed with --url")
    sub.add_parser("bench", help="benchmarks (gamesync bench --help)", add_help=False)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point of the `gamesync` console script."""
    argv = list(sys.argv[1:] if argv is None else argv)
    # Subcommands with their own parsers get the rest of the line untouched.
    command = next((a for a in argv if not a.startswith("-")), None)
    if command in ("operator", "bench"):
        rest = argv[argv.index(command) + 1 :]
        if command == "operator":
            try:
                from gamesync_operator.cli import main as operator_main
            except ImportError as exc:
                print(f"gamesync operator needs the 'operator' extra: {exc}", file=sys.stderr)
                return 2
            return int(operator_main(rest))
        try:
            from gamesync.bench.cli import main as bench_main
        except ImportError as exc:
            print(f"gamesync bench needs the 'bench' extra: {exc}", file=sys.stderr)
            return 2
        return int(bench_main(rest))
    args = _parser().parse_args(argv)
    logging.basicConfig(
        level=args.log_level.upper(),
        stream=sys.stderr,
        format="%(asctime)s %(levelname)s %(name)s %(message)s",
    )
    runners = {
        "gateway": _run_gateway,
        "keys": _run_keys,
        "token": _run_token,
        "publish": _run_publish,
    }
    try:
        return runners[args.command](args)
    except GameSyncError as exc:
        print(f"gamesync {args.command}: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
