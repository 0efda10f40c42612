"""The fan-out engine between gateway pods, behind one small interface."""

from __future__ import annotations

from gamesync.broker.base import Broker, EnvelopeHandler, create_broker

__all__ = ["Broker", "EnvelopeHandler", "create_broker"]
