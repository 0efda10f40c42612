"""The `gamesync` command line (DESIGN §6)."""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import shutil
import sys
from pathlib import Path
from typing import Any

from gamesync import __version__
from gamesync.errors import GameSyncError

__all__ = ["main"]


class _Command(argparse.ArgumentParser):
    """A subcommand's parser: it refuses arguments it does not know, with its own usage.

    (argparse hands a subcommand's unknown arguments up to the top-level parser, which would
    print the top-level usage for `gamesync gateway --brokr x`.)
    """

    def parse_known_args(  # type: ignore[override]
        self, args: list[str] | None = None, namespace: argparse.Namespace | None = None
    ) -> tuple[argparse.Namespace, list[str]]:
        parsed, unknown = super().parse_known_args(args, namespace)
        if unknown:
            self.error(f"unrecognized arguments: {' '.join(unknown)}")
        return parsed, unknown


def _one_line_per_flag(prog: str) -> argparse.HelpFormatter:
    """Flag and help side by side, wide enough that no help line wraps."""
    width = max(shutil.get_terminal_size().columns - 2, 110)
    return argparse.HelpFormatter(prog, max_help_position=38, width=width)


def _gateway_parser(sub: Any, *, with_flags: bool) -> None:
    p = sub.add_parser(
        "gateway",
        help="run a websocket gateway",
        usage="%(prog)s [--FLAG VALUE ...]   (gamesync gateway --help lists every flag)",
        description="Every flag also reads GAMESYNC_<FLAG> from the environment; flags win.",
        formatter_class=_one_line_per_flag,
    )
    if with_flags:  # pydantic costs a quarter second: only `gamesync gateway` pays it
        from gamesync.flags import add_settings_flags
        from gamesync.settings import GatewaySettings

        add_settings_flags(p, GatewaySettings)


def _run_gateway(args: argparse.Namespace) -> int:
    from gamesync.flags import given_settings
    from gamesync.logs import configure_logging
    from gamesync.server import serve
    from gamesync.settings import GatewaySettings, load_settings

    settings = load_settings(**given_settings(args, GatewaySettings))
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


def _parser(*, gateway_flags: bool = True) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="gamesync", description="GameSync realtime game-state gateway"
    )
    parser.add_argument("--version", action="version", version=f"gamesync {__version__}")
    parser.add_argument(
        "--log-level", default="info", choices=["debug", "info", "warning", "error"]
    )
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Command)
    _gateway_parser(sub, with_flags=gateway_flags)
    sub.add_parser(
        "operator", help="run the kopf operator (gamesync operator --help)", add_help=False
    )
    keys = sub.add_parser("keys", help="manage signing keys")
    keys_sub = keys.add_subparsers(dest="keys_command", required=True)
    gen = keys_sub.add_parser(
        "generate",
        help="write DIR/jwks.json (public) and DIR/signer.json (private)",
        description="Write DIR/jwks.json (public keys, for gateways' --keys) and "
        "DIR/signer.json (private keys, for the backend and `gamesync token` only).",
    )
    gen.add_argument(
        "--alg",
        default="ES256",
        choices=["ES256", "EdDSA", "RS256", "HS256"],
        help="signing algorithm; HS256 keys are shared secrets (default: ES256)",
    )
    gen.add_argument(
        "--dir", type=Path, required=True, help="folder to write the two files to (created)"
    )
    tok = sub.add_parser(
        "token",
        help="sign a token with a signer file's active key",
        description="Print a JWT signed with the signer file's active key.",
    )
    tok.add_argument(
        "--signer", type=Path, required=True, help="signer file (DIR/signer.json, private)"
    )
    tok.add_argument("--sub", required=True, help="user id the token speaks for (sub claim)")
    tok.add_argument(
        "--ttl", type=int, default=3600, help="seconds until it expires (default: 3600)"
    )
    tok.add_argument("--aud", help="aud claim (default: none)")
    tok.add_argument("--iss", help="iss claim (default: none)")
    tok.add_argument(
        "--games", help="games claim for the claim policy: comma-separated ids (default: none)"
    )
    pub = sub.add_parser(
        "publish",
        help="publish an envelope file",
        description="Publish one envelope (DESIGN §3), e.g. deploy/examples/envelope.json.",
    )
    pub.add_argument("game_id", type=int, help="the game id; must match the envelope's gameId")
    pub.add_argument("envelope", type=Path, help="JSON file holding the envelope")
    target = pub.add_mutually_exclusive_group(required=True)
    target.add_argument(
        "--broker", help="publish straight to Redis: the gateways' Redis --broker URL"
    )
    target.add_argument("--url", help="a gateway's internal URL, e.g. http://127.0.0.1:9000")
    pub.add_argument("--publish-token", help="the gateway's --publish-token (needed with --url)")
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
    args = _parser(gateway_flags="gateway" in argv).parse_args(argv)
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
