"""`gamesync operator`: run the GameSyncCluster operator (kopf, standalone by default)."""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import sys
from typing import TYPE_CHECKING, Any

from gamesync_operator.network import OperatorPeer
from gamesync_operator.policy import ImagePolicy

if TYPE_CHECKING:
    from gamesync_operator.config import OperatorConfig

__all__ = ["QUIET_LOGGERS", "config_from", "configure_logging", "main", "parse"]

#: Loggers that speak per request or per handler call: at WARNING unless -v. The operator's
#: own log (`gamesync_operator`) says what it decided and changed, at INFO.
QUIET_LOGGERS = ("httpx", "httpcore", "aiohttp", "kubernetes", "urllib3", "kopf.objects")


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="gamesync operator", description=__doc__)
    scope = parser.add_mutually_exclusive_group(required=True)
    scope.add_argument(
        "-n",
        "--namespace",
        action="append",
        dest="namespaces",
        metavar="NS",
        help="watch this namespace (repeatable; globs like team-* allowed)",
    )
    scope.add_argument("-A", "--all-namespaces", action="store_true", help="watch every namespace")
    parser.add_argument(
        "--peering",
        metavar="NAME",
        help="use the KopfPeering object NAME for HA (default: standalone, one replica)",
    )
    parser.add_argument("--priority", type=int, default=0, help="peering priority")
    parser.add_argument(
        "--liveness",
        metavar="URL",
        help="serve liveness at this URL, e.g. http://0.0.0.0:8080/healthz",
    )
    parser.add_argument(
        "--interval",
        type=float,
        default=30.0,
        help="seconds between level-based resyncs (drift repair, scaling, rotation)",
    )
    parser.add_argument(
        "--stats-timeout", type=float, default=2.0, help="seconds per /v1/stats read"
    )
    parser.add_argument(
        "--metrics",
        metavar="HOST:PORT",
        help="serve Prometheus metrics at http://HOST:PORT/metrics, e.g. 0.0.0.0:8081",
    )
    parser.add_argument(
        "--allowed-image",
        action="append",
        dest="allowed_images",
        default=[],
        metavar="PATTERN",
        help="a glob a GameSyncCluster's gateway image must match, e.g. "
        "'ghcr.io/nommie/gamesync-gateway:*' (repeatable; none given: any image)",
    )
    parser.add_argument(
        "--self-namespace",
        metavar="NS",
        help="the operator's own namespace: gateway NetworkPolicies let it reach port 9000",
    )
    parser.add_argument(
        "--self-labels",
        metavar="K=V,...",
        default="",
        help="labels of the operator's own pods (with --self-namespace)",
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    return parser


def _peer(namespace: str | None, labels: str) -> OperatorPeer | None:
    """The operator's own pods from --self-namespace/--self-labels; ValueError if malformed."""
    pairs = [p.strip() for p in labels.split(",") if p.strip()]
    if any("=" not in p for p in pairs):
        raise ValueError(f"--self-labels wants K=V,..., got {labels!r}")
    if namespace is None:
        if pairs:
            raise ValueError("--self-labels needs --self-namespace")
        return None
    return OperatorPeer(namespace, dict(p.split("=", 1) for p in pairs))


def config_from(args: argparse.Namespace) -> OperatorConfig:
    """The operator's settings from parsed flags; ValueError for a malformed one."""
    from gamesync_operator.config import OperatorConfig  # imports the Kubernetes client

    namespaces = args.namespaces or ()
    return OperatorConfig(
        interval=args.interval,
        stats_timeout=args.stats_timeout,
        images=ImagePolicy(tuple(args.allowed_images)),
        peer=_peer(args.self_namespace, args.self_labels),
        # Globs need kopf to follow namespaces (cluster-wide list/watch); exact names do not.
        scan_namespaces=any(set(ns) & set("*?[!,") for ns in namespaces),
    )


def configure_logging(verbose: bool) -> None:
    """Decisions and changes at INFO; every request and handler call only with -v (DEBUG)."""
    level = logging.DEBUG if verbose else logging.INFO
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger().setLevel(level)  # also when something configured handlers already
    for name in QUIET_LOGGERS:
        logging.getLogger(name).setLevel(logging.NOTSET if verbose else logging.WARNING)


def parse(argv: list[str]) -> argparse.Namespace:
    """The flags of `gamesync operator`; SystemExit on --help and on errors (argparse)."""
    return _parser().parse_args(argv)


def main(argv: list[str]) -> int:
    """Run until interrupted, then exit the process; returns an exit code only for bad flags."""
    try:
        args = parse(argv)
    except SystemExit as exc:  # argparse exits on --help and on errors
        return int(exc.code or 0)
    # kopf and the Kubernetes client take seconds to import: only a run pays for them, not --help.
    import kopf

    from gamesync_operator.handlers import register

    configure_logging(args.verbose)
    try:
        config = config_from(args)
    except ValueError as exc:
        print(f"gamesync operator: {exc}")
        return 2
    namespaces = args.namespaces or ()
    if args.metrics:
        host, _, port = args.metrics.rpartition(":")
        if not port.isdigit():
            print(f"gamesync operator: --metrics wants HOST:PORT, got {args.metrics!r}")
            return 2
        config.metrics.serve(host or "0.0.0.0", int(port))  # noqa: S104 - a pod's own port
    registry = kopf.OperatorRegistry()
    register(registry, config, peering=args.peering is not None)

    @kopf.on.login(registry=registry)
    def login(**kwargs: Any) -> Any:
        return kopf.login_via_client(**kwargs)

    try:
        asyncio.run(
            kopf.operator(
                registry=registry,
                standalone=args.peering is None,
                peering_name=args.peering,
                priority=args.priority,
                liveness_endpoint=args.liveness,
                clusterwide=bool(args.all_namespaces),
                namespaces=namespaces,
            )
        )
    except KeyboardInterrupt:
        return 130
    # Stopped in order: watches closed, passes ended, clients closed. What is left is the
    # interpreter tearing down kopf's and the Kubernetes client's objects, about a second on
    # 2 cores: skip it (logs flushed first).
    logging.shutdown()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)
