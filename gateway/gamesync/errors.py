"""Exceptions, one root, split by how the caller reacts."""

from __future__ import annotations

__all__ = [
    "AuthError",
    "BrokerUnavailable",
    "ConfigError",
    "EnvelopeError",
    "GameSyncError",
    "ProtocolError",
]


class GameSyncError(Exception):
    """Root of every error GameSync raises on purpose."""


class ConfigError(GameSyncError):
    """Settings, key files or runtime config are invalid: refuse them, keep what was good."""


class AuthError(GameSyncError):
    """A token or credential is refused; `code` is the protocol error code sent to the client."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


class ProtocolError(GameSyncError):
    """A client frame is malformed: answer `bad_request`, keep the socket."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class EnvelopeError(GameSyncError):
    """A published envelope is invalid (HTTP 400 with the reason)."""


class BrokerUnavailable(GameSyncError):
    """The broker cannot be reached now; retry later, never treat as success."""
