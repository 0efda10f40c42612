"""The verification keys in force, reloaded live from the JWKS file; last good set kept."""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from pathlib import Path

from gamesync.errors import AuthError, ConfigError
from gamesync.filewatch import FileWatcher
from gamesync.keys import MAX_TOKEN_LIFETIME, Identity, KeySet, refuse_signing_keys
from gamesync.settings import TOKEN_CACHE_SIZE
from gamesync.tokencache import TokenCache

__all__ = ["KeyStore", "KidsListener"]

log = logging.getLogger("gamesync.keys")

#: Told the kids that left the key set and the kids now in it, after every applied reload.
KidsListener = Callable[[set[str], set[str]], None]


class KeyStore:
    """Holds the current KeySet; a reload that fails keeps the previous one (DESIGN §4).

    Only verification keys are accepted: a file with private key material is refused, and so
    is a shared HS256 secret unless `allow_hs256` (both at start-up and on every reload). A
    reload that drops a kid tells `on_kids` (the gateway closes that key's sessions).
    Verified tokens are remembered (`tokens`, `cache_size` entries) once their connection ends
    (`remember`), until their `exp` or until the key set is replaced, whichever comes first;
    audience, issuer, leeway and lifetime are fixed for the store's life, so a remembered answer
    is the one a fresh check would give.
    """

    def __init__(
        self,
        keyset: KeySet | None = None,
        *,
        audience: str | None = None,
        issuer: str | None = None,
        leeway: float = 5.0,
        allow_hs256: bool = False,
        max_lifetime: float = MAX_TOKEN_LIFETIME,
        cache_size: int = TOKEN_CACHE_SIZE,
    ) -> None:
        self.tokens = TokenCache(cache_size)
        self._keyset = keyset
        self.audience = audience
        self.issuer = issuer
        self.leeway = leeway
        self.allow_hs256 = allow_hs256
        self.max_lifetime = max_lifetime
        self.on_kids: KidsListener | None = None
        self.path: Path | None = None
        self.reloads = 0
        self.reload_failures = 0
        self.last_error: str | None = None
        self._watcher: FileWatcher | None = None

    @property
    def keyset(self) -> KeySet | None:
        """The keys in force."""
        return self._keyset

    @keyset.setter
    def keyset(self, keyset: KeySet | None) -> None:
        # Every replacement drops the remembered tokens, before any token meets the new set: a
        # token whose key was removed must meet the full check (and fail), never a stale entry.
        self.tokens.clear()
        self._keyset = keyset

    def load(self, content: bytes) -> None:
        """Replace the key set from JWKS bytes, or keep the current one and log why not."""
        try:
            keyset = self._parse(content)
        except ConfigError as exc:
            self.reload_failures += 1
            self.last_error = str(exc)
            name = self.path or "(no path)"
            if self.keyset is None:
                raise ConfigError(f"cannot load keys from {name}: {exc}") from exc
            log.error(
                "key file %s refused, keeping the last good keys %s: %s",
                name,
                self.keyset.kids,
                exc,
            )
            return
        before = set(self.keyset.kids) if self.keyset is not None else set()
        self.keyset = keyset
        self.reloads += 1
        self.last_error = None
        log.info("keys loaded: %s", ", ".join(keyset.kids) or "(one key without kid)")
        now = set(keyset.kids)
        if before - now:
            log.warning(
                "keys removed: %s; their sessions are closed (4401) over the next seconds",
                ", ".join(sorted(before - now)),
            )
        if self.on_kids is not None:
            self.on_kids(before - now, now)

    def _parse(self, content: bytes) -> KeySet:
        try:
            document = json.loads(content)
        except ValueError as exc:  # JSONDecodeError and UnicodeDecodeError
            raise ConfigError(f"not valid JSON ({exc})") from exc
        refuse_signing_keys(document, allow_hs256=self.allow_hs256)
        return KeySet.from_jwks(document)

    def watch(self, path: Path, interval: float) -> FileWatcher:
        """Load `path` now (failing loudly) and keep watching it."""
        self.path = path
        self._watcher = FileWatcher(path, self.load, interval)
        if not self._watcher.check():
            raise ConfigError(f"key file {path} does not exist or cannot be read")
        return self._watcher

    def verify(self, token: str) -> Identity:
        """The identity `token` speaks for under the keys in force, or raise AuthError."""
        keyset = self._keyset
        if keyset is None:
            raise AuthError("unauthorized", "no keys loaded")
        return self.tokens.verify(token, lambda t: self._verify(keyset, t))

    def remember(self, token: str, identity: Identity) -> None:
        """A connection admitted with `token` ended: its client may come back with it."""
        self.tokens.remember(token, identity)

    def _verify(self, keyset: KeySet, token: str) -> Identity:
        return keyset.verify(
            token,
            audience=self.audience,
            issuer=self.issuer,
            leeway=self.leeway,
            max_lifetime=self.max_lifetime,
        )

    @property
    def kids(self) -> list[str]:
        return self.keyset.kids if self.keyset else []
