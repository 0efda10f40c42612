"""The chart's RBAC is exactly what the operator uses: every call granted, nothing granted idle.

Each KMock test checks its own calls on the way out (kmock_world.running_operator); this one,
ordered last by conftest.py, compares the whole suite's calls with the chart in both modes.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from api_calls import IMPLIED, SUITE, chart_rbac


def test_the_chart_grants_exactly_what_the_kmock_suite_used(request: pytest.FixtureRequest) -> None:
    kmock_tests = {
        item.nodeid
        for item in request.session.items
        if "kmock" in getattr(item, "fixturenames", ()) and item.nodeid != request.node.nodeid
    }
    missing = kmock_tests - SUITE.ran
    if missing:
        pytest.skip(f"needs the whole KMock suite in this session ({len(missing)} not run)")
    used = SUITE.calls | IMPLIED
    roles, no_cluster_role = chart_rbac(all_namespaces=False)
    _, cluster = chart_rbac(all_namespaces=True)
    assert roles == used, f"granted, never used: {roles - used}; used: {used - roles}"
    assert cluster == used, f"granted, never used: {cluster - used}; used: {used - cluster}"
    assert no_cluster_role == set()  # namespaced mode: nothing cluster-scoped at all
    # Secrets are only ever read by name: no list or watch anywhere, in either mode.
    assert {verb for group, resource, verb in used if resource == "secrets"} == {
        "get",
        "create",
        "patch",
    }


def _documented() -> set[tuple[str, str, str]]:
    """The RBAC table of docs/operator.md, as (apiGroup, resource, verb)."""
    text = (Path(__file__).resolve().parents[2] / "docs" / "operator.md").read_text()
    table = text.split("**RBAC the operator needs.**", 1)[1].split("\n\n", 2)[1]
    rows = [line for line in table.splitlines() if line.startswith("| `")]
    out = set()
    for row in rows:
        group, resources, verbs = (re.findall(r"`([^`]*)`", c) for c in row.split("|")[1:4])
        for resource in resources:
            for verb in verbs:
                out.add(("" if group == ['""'] else group[0], resource, verb))
    return out


def test_the_documented_rbac_table_is_the_charts() -> None:
    roles, _ = chart_rbac(all_namespaces=False)
    assert _documented() == roles
