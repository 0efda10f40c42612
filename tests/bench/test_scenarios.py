"""The scenario registry: one entry per scenario module, read by the CLI and the digest."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from gamesync.bench.cli import SIZES, build_parser, resolve_options
from gamesync.bench.scenarios import SCENARIOS, Options


def test_the_cli_offers_exactly_the_registered_scenarios_in_order() -> None:
    [action] = [a for a in build_parser()._actions if a.dest == "scenario"]
    assert list(action.choices or []) == list(SCENARIOS)
    assert list(SCENARIOS) == [
        "fanout",
        "latency",
        "peer",
        "polling",
        "idle",
        "slow",
        "throughput",
        "bandwidth",
        "storm",
        "affinity",
    ]


@pytest.mark.parametrize("name", list(SCENARIOS))
def test_each_entry_is_its_own_module_with_defaults_the_cli_can_apply(name: str) -> None:
    scenario = SCENARIOS[name]
    assert scenario.name == name
    assert scenario.run.__module__ == f"gamesync.bench.scenarios.{name}"
    assert set(scenario.defaults) <= set(SIZES)
    assert set(SIZES) <= {f.name for f in dataclasses.fields(Options)}
    assert scenario.columns
    assert len(set(scenario.columns)) == len(scenario.columns)


def test_a_scenario_takes_its_default_sizes_unless_a_flag_gives_one(tmp_path: Path) -> None:
    parser = build_parser()
    opts = resolve_options(parser.parse_args(["latency"]), tmp_path)
    assert (opts.clients, opts.games, opts.rate, opts.seconds, opts.gateways, opts.runs) == (
        5000,
        1250,
        2000.0,
        20.0,
        2,
        3,
    )
    opts = resolve_options(
        parser.parse_args(["latency", "--clients", "40", "--runs", "1"]), tmp_path
    )
    assert (opts.clients, opts.games, opts.runs) == (40, 1250, 1)


def test_a_size_the_scenario_does_not_default_keeps_the_options_default(tmp_path: Path) -> None:
    opts = resolve_options(build_parser().parse_args(["polling"]), tmp_path)
    assert (opts.players, opts.games, opts.seconds, opts.runs) == (1000, 250, 60.0, 1)
    assert opts.clients == Options(scenario="polling", workdir=tmp_path).clients
