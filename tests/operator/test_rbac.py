"""The chart's RBAC is exactly what the operator uses: every call granted, nothing granted idle.

Each KMock test checks its own calls on the way out (kmock_world.running_operator); this one,
ordered last by conftest.py, compares the whole suite's calls with the chart in both modes.
"""

from __future__ import annotations

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
