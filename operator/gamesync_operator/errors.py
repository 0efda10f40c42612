"""Operator exceptions, one root, split by how the reconciler reacts."""

from __future__ import annotations

__all__ = ["ApiError", "OperatorError", "SpecError", "StatsError"]


class OperatorError(Exception):
    """Root of every error the operator raises on purpose."""


class SpecError(OperatorError):
    """The resource asks for something invalid: report it in a condition, change nothing."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason
        self.message = message


class ApiError(OperatorError):
    """The Kubernetes API refused or failed a request: retry later, say so in a condition."""

    def __init__(self, status: int, reason: str, message: str) -> None:
        super().__init__(f"{status} {reason}: {message}")
        self.status = status
        self.reason = reason
        self.message = message


class StatsError(OperatorError):
    """A gateway pod's /v1/stats could not be read."""
