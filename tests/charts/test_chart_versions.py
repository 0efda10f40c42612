"""pyproject.toml's version is the one version: chart, image and changelog follow it."""

from __future__ import annotations

import re
import tomllib

import yaml
from chart_rendering import CHART, ROOT

VERSION: str = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"]


def test_chart_version_and_app_version_follow_pyproject() -> None:
    chart = yaml.safe_load((CHART / "Chart.yaml").read_text())
    assert chart["version"] == VERSION
    assert chart["appVersion"] == VERSION
    assert isinstance(chart["appVersion"], str)  # quoted, so that 1.10 never becomes 1.1


def test_image_version_label_follows_pyproject() -> None:
    dockerfile = (ROOT / "Dockerfile").read_text()
    assert re.findall(r"^ARG VERSION=(\S+)$", dockerfile, re.MULTILINE) == [VERSION]


def test_package_version_follows_pyproject() -> None:
    init = (ROOT / "gateway" / "gamesync" / "__init__.py").read_text()
    literal = re.search(r'^__version__ = "([^"]+)"', init, re.MULTILINE)
    if literal:  # a version read from package metadata at run time cannot drift
        assert literal.group(1) == VERSION


def test_changelog_has_a_section_for_the_current_version() -> None:
    changelog = (ROOT / "CHANGELOG.md").read_text()
    assert re.search(rf"^## \[{re.escape(VERSION)}\]", changelog, re.MULTILINE)
