"""The fan-out engine between gateway pods, behind one small interface."""

from __future__ import annotations

from gamesync.broker._redis_common import LAG_BUCKETS, PUBLISH_SCRIPT_SHA1, BrokerStats
from gamesync.broker.base import Broker, EnvelopeHandler, create_broker

__all__ = [
    "LAG_BUCKETS",
    "PUBLISH_SCRIPT_SHA1",
    "Broker",
    "BrokerStats",
    "EnvelopeHandler",
    "create_broker",
]
