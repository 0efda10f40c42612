"""`promtool check rules` and `promtool test rules` on the chart's alert rules."""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import yaml

HERE = Path(__file__).resolve().parent
ALERTS = HERE.parents[1] / "charts" / "gamesync-operator" / "files" / "alerts.yaml"
UNIT_TESTS = HERE / "alerts.test.yaml"


def _run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(args, capture_output=True, text=True, timeout=60, check=False)


def _alert_names() -> set[str]:
    groups = yaml.safe_load(ALERTS.read_text())["groups"]
    return {rule["alert"] for group in groups for rule in group["rules"] if "alert" in rule}


def _evaluations() -> list[dict[str, Any]]:
    tests = yaml.safe_load(UNIT_TESTS.read_text())["tests"]
    return [e for test in tests for e in test["alert_rule_test"]]


def test_promtool_accepts_the_rule_file(promtool: str) -> None:
    result = _run(promtool, "check", "rules", str(ALERTS))
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"SUCCESS: {len(_alert_names())} rules found" in result.stdout


def test_every_alert_passes_its_promtool_unit_tests(promtool: str) -> None:
    result = _run(promtool, "test", "rules", str(UNIT_TESTS))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout


def test_every_alert_has_a_test_that_fires_it_and_one_that_does_not() -> None:
    fired = {e["alertname"] for e in _evaluations() if e["exp_alerts"]}
    quiet = {e["alertname"] for e in _evaluations() if not e["exp_alerts"]}
    assert fired == _alert_names()
    assert quiet == _alert_names()


def test_a_wrong_expectation_fails_promtool(promtool: str, tmp_path: Path) -> None:
    """The unit tests can fail: the same file expecting a quiet alert to fire does."""
    doc = yaml.safe_load(UNIT_TESTS.read_text())
    doc["rule_files"] = [str(ALERTS)]
    quiet = next(e for t in doc["tests"] for e in t["alert_rule_test"] if not e["exp_alerts"])
    quiet["exp_alerts"] = [{"exp_labels": {"severity": "critical"}}]
    broken = tmp_path / "broken.test.yaml"
    broken.write_text(yaml.safe_dump(doc))
    result = _run(promtool, "test", "rules", str(broken))
    assert result.returncode != 0
    assert "FAILED" in result.stdout + result.stderr
