"""The operator's API calls as RBAC sees them, and the rules the chart grants.

Every KMock test records the requests the operator made (kopf's and its own client's, told
apart from the test world's by User-Agent); `running_operator` checks each against the chart's
RBAC on the way out, and test_rbac compares the whole suite's calls with the chart, both ways.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

import helm_python as helm
import yaml

CHART = Path(__file__).resolve().parents[2] / "charts" / "gamesync-operator"
#: (apiGroup, resource or resource/subresource, verb)
Call = tuple[str, str, str]
OPERATOR_AGENTS = ("gamesync-operator", "kopf/")
#: Permissions no request shows: setting `blockOwnerDeletion: true` in a child's owner
#: reference needs `update` on the owner's finalizers where OwnerReferencesPermissionEnforcement
#: admission is on (every child carries one).
IMPLIED: frozenset[Call] = frozenset(
    {("gamesync.nommie.dev", "gamesyncclusters/finalizers", "update")}
)


@dataclass(frozen=True)
class Recorded:
    call: Call
    namespace: str | None  # None: a cluster-scoped request (all namespaces)
    path: str


def _verb(method: str, name: str | None, params: Mapping[str, str]) -> str:
    if method == "GET":
        if params.get("watch") in ("true", "1"):
            return "watch"
        return "get" if name else "list"
    return {"POST": "create", "PUT": "update", "PATCH": "patch"}.get(
        method, "delete" if name else "deletecollection"
    )


def operator_requests(kmock: Any) -> list[Recorded]:
    """What kopf and the operator's client asked KMock for (discovery URLs left out)."""
    out = []
    for request in list(kmock):
        agent = request.headers.get("User-Agent", "")
        resource = request.resource
        if not agent.startswith(OPERATOR_AGENTS) or resource is None or not resource.plural:
            continue
        plural = resource.plural + (f"/{request.subresource}" if request.subresource else "")
        method = str(request.method).rsplit(".", 1)[-1].upper()
        verb = _verb(method, request.name, request.params)
        out.append(
            Recorded((resource.group or "", plural, verb), request.namespace, request.url.path)
        )
    return out


def grants(rules: Iterable[Mapping[str, Any]]) -> set[Call]:
    return {
        (group, resource, verb)
        for rule in rules
        for group in rule["apiGroups"]
        for resource in rule["resources"]
        for verb in rule["verbs"]
    }


@cache
def chart_rbac(all_namespaces: bool) -> tuple[frozenset[Call], frozenset[Call]]:
    """(grants of the namespaced Roles, grants of the ClusterRole) the chart renders."""
    values = {"watch": {"allNamespaces": all_namespaces, "namespaces": []}}
    with helm.Chart.load(CHART) as chart:
        manifests = chart.render(values, name="gs", namespace="games")
    objects = [
        doc
        for name, text in manifests.items()
        if name.endswith(".yaml")
        for doc in yaml.safe_load_all(text)
        if doc
    ]
    roles = grants(r for o in objects if o["kind"] == "Role" for r in o["rules"])
    cluster = grants(r for o in objects if o["kind"] == "ClusterRole" for r in o["rules"])
    return frozenset(roles), frozenset(cluster)


def ungranted(recorded: Iterable[Recorded], clusterwide: bool) -> list[str]:
    """Calls the chart's RBAC would refuse.

    A cluster-wide run must fit the cluster-wide ClusterRole, and each call, made per namespace
    instead, the namespaced Role too. A namespaced run makes namespaced calls only.
    """
    roles, _ = chart_rbac(all_namespaces=False)
    _, cluster = chart_rbac(all_namespaces=True)
    out = []
    for r in recorded:
        if clusterwide:
            refused = r.call not in cluster or r.call not in roles
        else:
            refused = r.namespace is None or r.call not in roles
        if refused:
            out.append(f"{r.call} at {r.path}")
    return sorted(set(out))


@dataclass
class Suite:
    """The calls every KMock test of this session made, and which tests ran."""

    calls: set[Call] = field(default_factory=set)
    ran: set[str] = field(default_factory=set)


SUITE = Suite()
