"""The verified-token cache: bounded, keyed by a hash, valid until `exp`, dropped on key reloads;
an entry made when a connection ends (`remember`) and taken out when its client is back."""

from __future__ import annotations

import hashlib
import json
import time
from pathlib import Path
from typing import Any

import pytest

from gamesync.errors import AuthError
from gamesync.keys import Identity, KeySet, generate_key, sign_token
from gamesync.keystore import KeyStore
from gamesync.tokencache import KEY_BYTES, TokenCache

NOW = 1_800_000_000.0


class Clock:
    """A wall clock the test moves."""

    def __init__(self, now: float = NOW) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


class Verifier:
    """Counts the full verifications the cache asks for."""

    def __init__(self, expires_at: int = int(NOW) + 60) -> None:
        self.expires_at = expires_at
        self.calls = 0

    def __call__(self, token: str) -> Identity:
        self.calls += 1
        if token.startswith("bad"):
            raise AuthError("unauthorized", "invalid token")
        return Identity(user_id=token, expires_at=self.expires_at, games=None, kid="k1")


def seen(cache: TokenCache, verify: Verifier, *tokens: str) -> None:
    """Each token's connection came and went: verified (or a hit), then remembered."""
    for token in tokens:
        cache.remember(token, cache.verify(token, verify))


def test_a_client_back_after_its_connection_ended_is_answered_without_verifying_again() -> None:
    cache, verify = TokenCache(10, Clock()), Verifier()
    first = cache.verify("tok-a", verify)
    cache.remember("tok-a", first)  # its connection ended
    assert cache.verify("tok-a", verify) is first
    assert (verify.calls, cache.hits, cache.misses) == (1, 1, 1)


def test_a_connected_client_holds_no_entry() -> None:
    """The entry is made when the connection ends; a hit takes it out until the next end."""
    cache, verify = TokenCache(10, Clock()), Verifier()
    identity = cache.verify("tok-a", verify)
    assert len(cache) == 0
    cache.remember("tok-a", identity)
    assert len(cache) == 1
    cache.verify("tok-a", verify)
    assert len(cache) == 0
    assert (verify.calls, cache.hits) == (1, 1)


def test_a_second_connection_with_a_token_still_connected_is_verified_in_full() -> None:
    cache, verify = TokenCache(10, Clock()), Verifier()
    first, second = cache.verify("tok-a", verify), cache.verify("tok-a", verify)
    assert verify.calls == 2
    cache.remember("tok-a", first)
    cache.remember("tok-a", second)  # both ended: one entry
    assert len(cache) == 1
    cache.verify("tok-a", verify)
    assert verify.calls == 2


def test_an_identity_verified_before_a_clear_is_not_remembered_after_it() -> None:
    """A connection that outlived a key reload: its token meets the new keys' full check."""
    cache, verify = TokenCache(10, Clock()), Verifier()
    identity = cache.verify("tok-a", verify)
    cache.clear()
    cache.remember("tok-a", identity)
    assert len(cache) == 0
    cache.verify("tok-a", verify)
    assert verify.calls == 2


def test_an_identity_the_cache_did_not_verify_is_not_remembered() -> None:
    cache = TokenCache(10, Clock())
    cache.remember("tok-a", Identity(user_id="a", expires_at=2**40, games=None, kid="k1"))
    assert len(cache) == 0


def test_the_token_itself_is_never_a_key() -> None:
    cache = TokenCache(10, Clock())
    token = "eyJhbGciOiJFUzI1NiJ9.secret-claims.signature"
    seen(cache, Verifier(), token)
    (key,) = cache._entries  # the only place entries live
    assert key != token
    assert token.encode() not in key
    assert key == hashlib.sha256(token.encode()).digest()[:KEY_BYTES]


def test_a_token_sharing_a_prefix_is_not_a_hit() -> None:
    """A forgery keeping a genuine token's header and claims but not its signature is verified."""
    cache, verify = TokenCache(10, Clock()), Verifier()
    seen(cache, verify, "tok.claims.good-signature")
    with pytest.raises(AuthError):
        cache.verify("bad" + "tok.claims.good-signature"[3:], verify)
    assert cache.verify("tok.claims.good-signature-but-longer", verify).user_id.endswith("longer")
    assert verify.calls == 3
    assert cache.hits == 0


def test_failures_are_not_remembered() -> None:
    cache, verify = TokenCache(10, Clock()), Verifier()
    for _ in range(2):
        with pytest.raises(AuthError):
            cache.verify("bad-token", verify)
    assert verify.calls == 2
    assert len(cache) == 0


def test_a_big_cache_drops_its_least_recently_left_sixteenth_at_once() -> None:
    cache, verify = TokenCache(64, Clock()), Verifier()
    seen(cache, verify, *(f"t{i}" for i in range(64)))
    seen(cache, verify, "t0")  # back and gone again: no longer among the oldest
    seen(cache, verify, "t64")  # over the bound: the 4 least recently left, t1..t4, go
    assert len(cache) == 61
    verify.calls = 0
    for token in ("t0", "t5", "t63", "t64"):
        cache.verify(token, verify)
    assert verify.calls == 0
    cache.verify("t1", verify)
    assert verify.calls == 1


def test_the_cache_holds_at_most_its_size_dropping_the_least_recently_left() -> None:
    cache, verify = TokenCache(3, Clock()), Verifier()
    seen(cache, verify, "a", "b", "c")
    seen(cache, verify, "a")  # a left again: now the most recent
    seen(cache, verify, "d")  # b goes
    assert len(cache) == 3
    verify.calls = 0
    for token in ("a", "c", "d"):
        cache.verify(token, verify)
    assert verify.calls == 0
    cache.verify("b", verify)
    assert verify.calls == 1


def test_an_entry_answers_until_exp_and_not_at_exp() -> None:
    clock = Clock()
    cache, verify = TokenCache(10, clock), Verifier(expires_at=int(NOW) + 60)
    seen(cache, verify, "tok")
    clock.now = NOW + 59.999
    seen(cache, verify, "tok")
    assert verify.calls == 1
    clock.now = NOW + 60  # at exp: the full check decides (leeway, then token_expired)
    cache.verify("tok", verify)
    assert verify.calls == 2


def test_a_token_already_past_exp_is_not_remembered() -> None:
    """Accepted within the verification's leeway, but never from the cache."""
    clock = Clock(NOW + 61)
    cache, verify = TokenCache(10, clock), Verifier(expires_at=int(NOW) + 60)
    seen(cache, verify, "tok", "tok")
    assert verify.calls == 2
    assert len(cache) == 0


def test_a_connection_that_ends_past_exp_is_not_remembered() -> None:
    clock = Clock()
    cache, verify = TokenCache(10, clock), Verifier(expires_at=int(NOW) + 60)
    identity = cache.verify("tok", verify)
    clock.now = NOW + 60
    cache.remember("tok", identity)
    assert len(cache) == 0


def test_size_zero_turns_the_cache_off() -> None:
    cache, verify = TokenCache(0, Clock()), Verifier()
    seen(cache, verify, "tok", "tok")
    assert (verify.calls, len(cache), cache.misses) == (2, 0, 2)


def test_clear_forgets_everything() -> None:
    cache, verify = TokenCache(10, Clock()), Verifier()
    seen(cache, verify, "tok")
    cache.clear()
    cache.verify("tok", verify)
    assert verify.calls == 2


def test_a_negative_size_is_refused() -> None:
    with pytest.raises(ValueError, match="negative"):
        TokenCache(-1)


# -- the key store's glue: real keys, real ES256 tokens ----------------------------------------


def _jwks(*keys: dict[str, Any]) -> bytes:
    return json.dumps({"keys": list(keys)}).encode()


def _signer(private: dict[str, Any]) -> dict[str, Any]:
    return {"keys": [private], "active": private["kid"]}


def test_a_cached_answer_is_the_fresh_verifications_answer() -> None:
    private, public = generate_key("ES256", kid="k1")
    store = KeyStore(KeySet.from_jwks({"keys": [public]}))
    token = sign_token(_signer(private), "7", games=[3, 1])
    fresh = KeyStore(KeySet.from_jwks({"keys": [public]}), cache_size=0).verify(token)
    first = store.verify(token)
    assert first == fresh
    store.remember(token, first)
    assert store.verify(token) == fresh
    assert (store.tokens.hits, store.tokens.misses) == (1, 1)


def test_a_forged_signature_on_a_cached_tokens_header_and_claims_is_refused() -> None:
    private, public = generate_key("ES256", kid="k1")
    store = KeyStore(KeySet.from_jwks({"keys": [public]}))
    token = sign_token(_signer(private), "7")
    store.remember(token, store.verify(token))
    head, claims, signature = token.split(".")
    other = sign_token(_signer(private), "8").split(".")[2]  # a genuine signature, elsewhere
    flipped = signature[:10] + ("B" if signature[10] != "B" else "C") + signature[11:]
    for forged in (f"{head}.{claims}.{other}", f"{head}.{claims}.{flipped}", token + "A"):
        with pytest.raises(AuthError):
            store.verify(forged)
    assert store.tokens.hits == 0
    assert store.verify(token).user_id == "7"


def test_a_token_whose_key_was_removed_is_refused_even_if_cached(tmp_path: Path) -> None:
    old_private, old_public = generate_key("ES256", kid="old")
    _, new_public = generate_key("ES256", kid="new")
    path = tmp_path / "jwks.json"
    path.write_bytes(_jwks(old_public, new_public))
    store = KeyStore()
    store.load(path.read_bytes())
    token = sign_token(_signer(old_private), "7")
    store.remember(token, store.verify(token))
    store.remember(token, store.verify(token))
    assert store.tokens.hits == 1
    store.load(_jwks(new_public))  # the reload revoking `old`
    with pytest.raises(AuthError, match="unknown key id"):
        store.verify(token)
    assert len(store.tokens) == 0


def test_every_applied_reload_drops_the_cache_and_a_refused_one_keeps_it() -> None:
    private, public = generate_key("ES256", kid="k1")
    store = KeyStore()
    store.load(_jwks(public))
    token = sign_token(_signer(private), "7")
    store.remember(token, store.verify(token))
    assert len(store.tokens) == 1
    store.load(b"{not json")  # refused: the same keys stay in force, and so do their answers
    assert len(store.tokens) == 1
    store.load(_jwks(public))  # applied, even with the same keys: start afresh
    assert len(store.tokens) == 0
    store.verify(token)
    assert store.tokens.misses == 2


def test_replacing_the_keyset_directly_drops_the_cache() -> None:
    private, public = generate_key("ES256", kid="k1")
    _, other = generate_key("ES256", kid="k1")  # same kid, another key
    store = KeyStore(KeySet.from_jwks({"keys": [public]}))
    token = sign_token(_signer(private), "7")
    store.remember(token, store.verify(token))
    store.keyset = KeySet.from_jwks({"keys": [other]})
    with pytest.raises(AuthError, match="invalid token"):
        store.verify(token)


def test_a_connection_that_outlived_its_keys_removal_is_not_remembered_when_it_ends() -> None:
    """Closed 4401 after a reload removed its key: its token must not come back as a hit."""
    old_private, old_public = generate_key("ES256", kid="old")
    _, new_public = generate_key("ES256", kid="new")
    store = KeyStore()
    store.load(_jwks(old_public, new_public))
    token = sign_token(_signer(old_private), "7")
    identity = store.verify(token)  # admitted
    store.load(_jwks(new_public))  # the reload revoking `old`; its sessions are closed
    store.remember(token, identity)  # ... and end
    assert len(store.tokens) == 0
    with pytest.raises(AuthError, match="unknown key id"):
        store.verify(token)


def test_a_connection_that_outlived_a_key_swap_under_its_kid_is_not_remembered() -> None:
    """Same kid, another key: no session is closed, but its token meets the new key in full."""
    private, public = generate_key("ES256", kid="k1")
    _, other = generate_key("ES256", kid="k1")
    store = KeyStore(KeySet.from_jwks({"keys": [public]}))
    token = sign_token(_signer(private), "7")
    identity = store.verify(token)
    store.keyset = KeySet.from_jwks({"keys": [other]})
    store.remember(token, identity)
    assert len(store.tokens) == 0
    with pytest.raises(AuthError, match="invalid token"):
        store.verify(token)


def test_a_cached_token_gets_token_expired_once_past_exp() -> None:
    """Real time, real token: the cache never stretches a token's life."""
    private, public = generate_key("ES256", kid="k1")
    store = KeyStore(KeySet.from_jwks({"keys": [public]}), leeway=0)
    issued = int(time.time())
    token = sign_token(_signer(private), "7", ttl=1, now=issued)
    store.remember(token, store.verify(token))
    deadline = time.monotonic() + 5
    while time.time() < issued + 1.05:  # waiting for the wall clock to pass exp itself
        assert time.monotonic() < deadline
        time.sleep(0.01)
    with pytest.raises(AuthError, match="token expired"):
        store.verify(token)
    assert store.tokens.hits == 0
