"""Shared builders for the operator tests."""

from __future__ import annotations

import copy
from typing import Any

from gamesync_operator.spec import ClusterSpec, parse_spec


def raw_spec(**sections: Any) -> dict[str, Any]:
    """A minimal valid spec; keyword sections are merged over it (None deletes a key)."""
    spec: dict[str, Any] = {
        "gateway": {"image": "ghcr.io/nommie/gamesync:0.1.0"},
        "redis": {"urlSecretRef": {"name": "redis-url"}},
        "exposure": {"httpRoute": {"parentRefs": [{"name": "public", "namespace": "gateways"}]}},
    }
    for name, value in sections.items():
        if value is None:
            spec.pop(name, None)
        elif isinstance(value, dict) and isinstance(spec.get(name), dict):
            spec[name] = {**spec[name], **copy.deepcopy(value)}
        else:
            spec[name] = copy.deepcopy(value)
    return spec


def make_spec(**sections: Any) -> ClusterSpec:
    return parse_spec("arena", "games", raw_spec(**sections))
