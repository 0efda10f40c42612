"""The fan-out engine between gateway pods, behind one small interface (`Broker`)."""

from __future__ import annotations

from gamesync.broker.base import Broker, EnvelopeHandler
from gamesync.broker.schemes import create_broker
from gamesync.broker.stats import LAG_BUCKETS, BrokerStats

__all__ = [
    "LAG_BUCKETS",
    "Broker",
    "BrokerStats",
    "EnvelopeHandler",
    "create_broker",
]
