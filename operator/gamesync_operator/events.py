"""Kubernetes Events about a GameSyncCluster, as core/v1 Event bodies (pure)."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

from gamesync_operator.crd import GROUP, KIND, VERSION
from gamesync_operator.signing_secrets import format_time
from gamesync_operator.triggers import ClusterKey

__all__ = ["COMPONENT", "Event", "event_body"]

COMPONENT = "gamesync-operator"
#: The API server refuses longer messages (core/v1 Event validation).
_MAX_MESSAGE = 1024


@dataclass(frozen=True)
class Event:
    """What happened to a cluster: `type` is Normal or Warning; `reason` is one CamelCase word."""

    type: str
    reason: str
    message: str


def event_body(key: ClusterKey, event: Event, now: dt.datetime, seq: int = 0) -> dict[str, Any]:
    """The Event to POST about the cluster `key`; `seq` tells apart Events made at one `now`.

    Named as client-go's recorder names them: `<object>.<hex nanoseconds>`.
    """
    when = format_time(now.replace(microsecond=0))
    nanos = int(now.timestamp() * 1_000_000) * 1000 + seq
    return {
        "apiVersion": "v1",
        "kind": "Event",
        "metadata": {"name": f"{key.name}.{nanos:x}", "namespace": key.namespace},
        "involvedObject": {
            "apiVersion": f"{GROUP}/{VERSION}",
            "kind": KIND,
            "name": key.name,
            "namespace": key.namespace,
            "uid": key.uid,
        },
        "type": event.type,
        "reason": event.reason,
        "message": event.message[:_MAX_MESSAGE],
        "source": {"component": COMPONENT},
        "reportingComponent": COMPONENT,
        "firstTimestamp": when,
        "lastTimestamp": when,
        "count": 1,
    }
