"""Verified tokens remembered until their `exp`: a client reconnecting with its token costs no
signature check (ES256 verification is most of an admission's CPU; DESIGN §4).

The cache is keyed by a SHA-256 of the token (its first 128 bits: finding another token with
the same key is a second preimage, out of reach), never the token itself (a heap dump or a
debugger shows no credential), and holds the `Identity` the full verification returned, so a
hit answers exactly what a fresh verification would. Its owner (`gamesync.keystore.KeyStore`)
drops it whole whenever the key set changes: an entry never outlives the key that verified it.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable
from itertools import islice

from gamesync.keys import Identity

__all__ = ["KEY_BYTES", "TokenCache"]


#: Bytes of the SHA-256 digest kept as the key: 128 bits, about 100 bytes per entry in all.
KEY_BYTES = 16


class TokenCache:
    """A bounded map SHA-256(token) -> Identity; the least recently used entries go first.

    A plain dict in use order (a hit moves its entry to the end): ~100 bytes an entry against
    ~170 for an OrderedDict, which matters at one entry per connection. Over `size`, the least
    recently used sixteenth goes at once, so eviction stays cheap in a dict (deleting from the
    front one at a time would scan the deleted slots again on every eviction).

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
        self._entries: dict[bytes, Identity] = {}

    def __len__(self) -> int:
        return len(self._entries)

    def verify(self, token: str, verify: Callable[[str], Identity]) -> Identity:
        """The cached identity of `token`, else `verify(token)` (remembered if it succeeds)."""
        entries = self._entries
        key = hashlib.sha256(token.encode()).digest()[:KEY_BYTES]
        identity = entries.pop(key, None)
        now = self._clock()
        if identity is not None and now < identity.expires_at:
            entries[key] = identity  # now the most recently used
            self.hits += 1
            return identity
        self.misses += 1
        identity = verify(token)  # raises AuthError: nothing is remembered
        if self.size and now < identity.expires_at:
            entries[key] = identity
            if len(entries) > self.size:
                for old in list(islice(entries, max(1, self.size // 16))):
                    del entries[old]
        return identity

    def clear(self) -> None:
        """Forget every entry (the key set changed)."""
        self._entries.clear()
