"""Every alert links its own section of docs/runbooks.md, at the project's documentation URL."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[2]
ALERTS = ROOT / "charts" / "gamesync-operator" / "files" / "alerts.yaml"
RUNBOOKS = ROOT / "docs" / "runbooks.md"


def _repository_base() -> str:
    """Where the repository's files are browsed: the Documentation URL minus README.md."""
    urls = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["urls"]
    documentation: str = urls["Documentation"]
    assert documentation.endswith("/README.md")
    return documentation.removesuffix("README.md")


def _slug(heading: str) -> str:
    """GitHub's anchor for a Markdown heading."""
    return re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")


def _rules() -> list[dict[str, object]]:
    groups = yaml.safe_load(ALERTS.read_text())["groups"]
    return [rule for group in groups for rule in group["rules"]]


def test_every_rule_links_an_existing_section_named_after_it() -> None:
    base = _repository_base()
    anchors = {
        _slug(line.removeprefix("## "))
        for line in RUNBOOKS.read_text().splitlines()
        if line.startswith("## ")
    }
    for rule in _rules():
        annotations = rule["annotations"]
        assert isinstance(annotations, dict)
        url = annotations["runbook_url"]
        assert url.startswith(base), url
        path, _, anchor = url.removeprefix(base).partition("#")
        assert (ROOT / path).resolve() == RUNBOOKS
        assert anchor == _slug(str(rule["alert"]))
        assert anchor in anchors, f"no section for {rule['alert']} in docs/runbooks.md"


def test_every_alert_section_belongs_to_a_rule() -> None:
    """No runbook for an alert that no longer exists."""
    alerts = {str(rule["alert"]) for rule in _rules()}
    sections = {
        line.removeprefix("## ")
        for line in RUNBOOKS.read_text().splitlines()
        if line.startswith("## GameSync")
    }
    assert sections == alerts
