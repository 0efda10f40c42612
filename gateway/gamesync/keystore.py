"""The verification keys in force, reloaded live from the JWKS file; last good set kept."""

from __future__ import annotations

import json
import logging
from pathlib import Path

from gamesync.errors import AuthError, ConfigError
from gamesync.filewatch import FileWatcher
from gamesync.keys import Identity, KeySet

__all__ = ["KeyStore"]

log = logging.getLogger("gamesync.keys")


class KeyStore:
    """Holds the current KeySet; a reload that fails keeps the previous one (DESIGN §4)."""

    def __init__(
        self,
        keyset: KeySet | None = None,
        *,
        audience: str | None = None,
        issuer: str | None = None,
        leeway: float = 5.0,
    ) -> None:
        self.keyset = keyset
        self.audience = audience
        self.issuer = issuer
        self.leeway = leeway
        self.reloads = 0
        self.reload_failures = 0
        self.last_error: str | None = None
        self._watcher: FileWatcher | None = None

    def load(self, content: bytes) -> None:
        """Replace the key set from JWKS bytes, or keep the current one and log why not."""
        try:
            keyset = KeySet.from_jwks(json.loads(content))
        except (ValueError, ConfigError) as exc:
            self.reload_failures += 1
            self.last_error = str(exc)
            if self.keyset is None:
                raise ConfigError(f"cannot load keys: {exc}") from exc
            log.error("key file refused, keeping the last good keys %s: %s", self.keyset.kids, exc)
            return
        self.keyset = keyset
        self.reloads += 1
        self.last_error = None
        log.info("keys loaded: %s", ", ".join(keyset.kids) or "(one key without kid)")

    def watch(self, path: Path, interval: float) -> FileWatcher:
        """Load `path` now (failing loudly) and keep watching it."""
        self._watcher = FileWatcher(path, self.load, interval)
        if not self._watcher.check():
            raise ConfigError(f"key file {path} does not exist or cannot be read")
        return self._watcher

    def verify(self, token: str) -> Identity:
        if self.keyset is None:
            raise AuthError("unauthorized", "no keys loaded")
        return self.keyset.verify(
            token, audience=self.audience, issuer=self.issuer, leeway=self.leeway
        )

    @property
    def kids(self) -> list[str]:
        return self.keyset.kids if self.keyset else []
