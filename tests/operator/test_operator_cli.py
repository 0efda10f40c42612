"""`gamesync operator` argument handling (running it needs a cluster: see docs/operator.md)."""

from __future__ import annotations

import subprocess
import sys

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


def test_help_does_not_import_kopf_or_kubernetes() -> None:
    """`gamesync operator --help` answers at once: the seconds of kopf imports wait for a run."""
    probe = (
        "import sys\n"
        "from gamesync.cli import main\n"
        "try:\n"
        "    code = main(['operator', '--help'])\n"
        "except SystemExit as exc:\n"
        "    code = exc.code\n"
        "heavy = sorted(m for m in sys.modules if m.split('.')[0] in ('kopf', 'kubernetes'))\n"
        "print('IMPORTED', heavy, code)\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, timeout=60, check=True
    )
    assert "--all-namespaces" in result.stdout
    assert result.stdout.strip().endswith("IMPORTED [] 0"), result.stdout[-500:]


def test_default_logging_keeps_decisions_and_drops_every_request_and_handler_call() -> None:
    import logging

    from gamesync_operator.cli import QUIET_LOGGERS, configure_logging

    root = logging.getLogger().level
    try:
        configure_logging(verbose=False)
        assert logging.getLogger("gamesync_operator").isEnabledFor(logging.INFO)
        for name in QUIET_LOGGERS:
            assert not logging.getLogger(name).isEnabledFor(logging.INFO), name
            assert logging.getLogger(name).isEnabledFor(logging.WARNING), name
        configure_logging(verbose=True)
        assert all(logging.getLogger(n).level == logging.NOTSET for n in QUIET_LOGGERS)
    finally:
        logging.getLogger().setLevel(root)
        for name in QUIET_LOGGERS:
            logging.getLogger(name).setLevel(logging.NOTSET)
