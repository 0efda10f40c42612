"""Verified tokens remembered until their `exp`: a client reconnecting with its token costs no
signature check (ES256 verification is most of an admission's CPU; DESIGN §4).

The cache is keyed by a SHA-256 of the token, never the token itself (a heap dump or a debugger
shows no credential), and holds the `Identity` the full verification returned, so a hit answers
exactly what a fresh verification would. Its owner (`gamesync.keystore.KeyStore`) drops it whole
whenever the key set changes: an entry never outlives the key that verified it.
"""

from __future__ import annotations

import hashlib
import time
from collections import OrderedDict
from collections.abc import Callable

from gamesync.keys import Identity

__all__ = ["TokenCache"]


class TokenCache:
    """A bounded map SHA-256(token) -> Identity; the least recently used entry goes first.

    An entry answers only while the clock is before its token's `exp` (`Identity.expires_at`,
    `exp` rounded down): the verification's leeway past `exp` is never served from the cache,
    so an expired token always meets the full check. Failed verifications are not remembered.
    `size` 0 turns the cache off (every lookup is a miss).
    """

    def __init__(self, size: int, clock: Callable[[], float] = time.time) -> None:
        if size < 0:
            raise ValueError("a token cache size cannot be negative")
        self.size = size
        self.hits = 0
        self.misses = 0
        self._clock = clock
        self._entries: OrderedDict[bytes, Identity] = OrderedDict()

    def __len__(self) -> int:
        return len(self._entries)

    def verify(self, token: str, verify: Callable[[str], Identity]) -> Identity:
        """The cached identity of `token`, else `verify(token)` (remembered if it succeeds)."""
        key = hashlib.sha256(token.encode()).digest()
        identity = self._entries.get(key)
        now = self._clock()
        if identity is not None:
            if now < identity.expires_at:
                self._entries.move_to_end(key)
                self.hits += 1
                return identity
            del self._entries[key]
        self.misses += 1
        identity = verify(token)  # raises AuthError: nothing is remembered
        if self.size and now < identity.expires_at:
            self._entries[key] = identity
            if len(self._entries) > self.size:
                self._entries.popitem(last=False)
        return identity

    def clear(self) -> None:
        """Forget every entry (the key set changed)."""
        self._entries.clear()
