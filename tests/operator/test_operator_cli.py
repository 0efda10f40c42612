"""`gamesync operator` argument handling (running it needs a cluster: see docs/operator.md)."""

from __future__ import annotations

import pytest

from gamesync_operator.cli import main


def test_help_exits_zero(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--help"]) == 0
    out = capsys.readouterr().out
    assert "--all-namespaces" in out
    assert "--liveness" in out
    assert "--peering" in out


def test_a_scope_is_required_so_nobody_watches_the_whole_cluster_by_accident(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert main([]) == 2
    assert "--namespace" in capsys.readouterr().err


def test_namespace_and_all_namespaces_are_exclusive(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["-n", "games", "-A"]) == 2
    assert "not allowed with" in capsys.readouterr().err
