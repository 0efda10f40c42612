"""Verified tokens remembered until their `exp`: a client reconnecting with its token costs no
signature check (ES256 verification is most of an admission's CPU; DESIGN §4).

The cache is keyed by a SHA-256 of the token (its first 128 bits: finding another token with
the same key is a second preimage, out of reach), never the token itself (a heap dump or a
debugger shows no credential), and holds the `Identity` the full verification returned, so a
hit answers exactly what a fresh verification would. Its owner (`gamesync.keystore.KeyStore`)
drops it whole whenever the key set changes: an entry never outlives the key that verified it.

An entry is made when a connection ends, not when it is admitted: a connected client holds
its identity already, and only a client that left may come back (a network blip, a restarted
ingress). So the cache costs nothing per connected client (issue 14's idle budget), and a hit
takes the entry out again until that connection ends in turn.
"""

from __future__ import annotations

import dataclasses
import hashlib
import time
from collections.abc import Callable
from itertools import islice

from gamesync.keys import Identity

__all__ = ["KEY_BYTES", "TokenCache"]


#: Bytes of the SHA-256 digest kept as the key: 128 bits, about 100 bytes per entry in all.
KEY_BYTES = 16


def _key(token: str) -> bytes:
    return hashlib.sha256(token.encode()).digest()[:KEY_BYTES]


class TokenCache:
    """A bounded map SHA-256(token) -> Identity of the tokens whose connections ended here.

    A plain dict in the order entries were made: ~100 bytes an entry against ~170 for an
    OrderedDict. Over `size`, the oldest sixteenth goes at once, so eviction stays cheap in a
    dict (deleting from the front one at a time would scan the deleted slots again on every
    eviction).

    `verify` answers from an entry (taking it out: the client is back) or verifies afresh and
    stamps the identity with the cache's key-set generation; `remember` puts a token back when
    its connection ends, only if its identity is of the current generation (verified under the
    keys in force: `clear` starts a new one) and the clock is before its token's `exp`
    (`Identity.expires_at`, `exp` rounded down). So the verification's leeway past `exp` is
    never served from the cache, and a token verified before a key reload always meets the full
    check again. Failed verifications are not remembered. `size` 0 turns the cache off.
    """

    def __init__(self, size: int, clock: Callable[[], float] = time.time) -> None:
        if size < 0:
            raise ValueError("a token cache size cannot be negative")
        self.size = size
        self.hits = 0
        self.misses = 0
        self._clock = clock
        #: the key set's generation: identities verified under an earlier one are not taken
        self._generation = 1
        self._entries: dict[bytes, Identity] = {}

    def __len__(self) -> int:
        return len(self._entries)

    def verify(self, token: str, verify: Callable[[str], Identity]) -> Identity:
        """The remembered identity of `token` (no longer remembered), else `verify(token)`."""
        entries = self._entries
        if entries:
            identity = entries.pop(_key(token), None)
            if identity is not None and self._clock() < identity.expires_at:
                self.hits += 1
                return identity
        self.misses += 1
        identity = verify(token)  # raises AuthError: nothing is remembered
        if self.size:
            identity = dataclasses.replace(identity, generation=self._generation)
        return identity

    def remember(self, token: str, identity: Identity) -> None:
        """`token`'s connection ended: keep its identity for a return, if still good."""
        if (
            not self.size
            or identity.generation != self._generation
            or self._clock() >= identity.expires_at
        ):
            return
        entries = self._entries
        key = _key(token)
        entries.pop(key, None)  # another connection of the same token: now the newest
        entries[key] = identity
        if len(entries) > self.size:
            for old in list(islice(entries, max(1, self.size // 16))):
                del entries[old]

    def clear(self) -> None:
        """Forget every entry, and every identity verified so far (the key set changed)."""
        self._entries.clear()
        self._generation += 1
