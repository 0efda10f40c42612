"""What a scenario receives (options, a context), what it hands back, and its registry entry."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from gamesync.bench.display import Display
from gamesync.bench.results import Target
from gamesync.bench.tokens import Credentials, make_credentials

__all__ = ["Context", "Measurement", "Options", "Scenario"]


@dataclass
class Options:
    """Command-line options after per-scenario defaults were applied."""

    scenario: str
    workdir: Path
    runs: int = 3
    size: int = 2048
    connections: list[int] = field(default_factory=lambda: [1000, 5000])
    games: int = 1
    deliveries: int = 100_000
    clients: int = 5000
    rate: float = 2000.0
    seconds: float = 20.0
    gateways: int = 2
    systems: list[str] = field(default_factory=list)
    players: int = 1000
    poll_interval: float = 3.0
    update_interval: float = 5.0
    slow_games: int = 30
    hold: float = 5.0
    connect_timeout: float = 120.0
    window: int = 8
    profile: float = 0.0
    settle: float = 3.0
    placement: str = "spread"
    max_rate: float = 0.0
    one_pod: bool = False
    keep_awake: bool = False


@dataclass
class Measurement:
    """What a scenario hands back: per-run rows, summary, targets, series for plots."""

    params: dict[str, Any]
    runs: list[dict[str, Any]]
    summary: dict[str, Any]
    targets: list[Target]
    series: dict[str, Any] = field(default_factory=dict)


class Context:
    """The options and the display of one invocation, and its credentials once made."""

    def __init__(self, opts: Options, display: Display) -> None:
        self.opts = opts
        self.display = display
        self._creds: Credentials | None = None

    def credentials(self, users: int) -> Credentials:
        """Signing keys and ``users`` tokens, made on first use and shared by every rig."""
        if self._creds is None:
            self._creds = make_credentials(self.opts.workdir / "keys", users)
        return self._creds


@dataclass(frozen=True)
class Scenario:
    """A registry entry: what ``gamesync bench NAME`` runs, its default sizes, its digest."""

    name: str
    run: Callable[[Context], Awaitable[Measurement]]
    # Options fields among the sizes the CLI resolves (``gamesync.bench.cli.SIZES``) that take
    # these values when their flag is not given: issue 8's sizes, heavy (use smaller values on
    # a shared machine).
    defaults: Mapping[str, Any]
    # The per-run columns of the Markdown digest; "a.b" reads key b of the row's dict a.
    columns: tuple[str, ...]
