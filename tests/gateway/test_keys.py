"""gamesync.keys: the JWT attack matrix, algorithm round trips, JWKS parsing, the key CLI."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import stat
import time
from pathlib import Path
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives import serialization

from gamesync.cli import main
from gamesync.errors import AuthError, ConfigError
from gamesync.keys import (
    ALGORITHMS,
    KeySet,
    generate_key,
    load_signer,
    public_jwk,
    sign_token,
)

NOW = int(time.time())
#: `iat` and `exp` of a token that is good now (an hour's lifetime)
LIVE = {"iat": NOW, "exp": NOW + 3600}


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def segment(doc: Any) -> str:
    return b64(json.dumps(doc).encode())


def forge(header: dict[str, Any], payload: dict[str, Any], signature: bytes = b"") -> str:
    """A compact JWS put together by hand, for tokens PyJWT refuses to make."""
    return f"{segment(header)}.{segment(payload)}.{b64(signature)}"


def hs256(secret: bytes, header: dict[str, Any], payload: dict[str, Any]) -> str:
    signing_input = f"{segment(header)}.{segment(payload)}"
    mac = hmac.new(secret, signing_input.encode(), hashlib.sha256).digest()
    return f"{signing_input}.{b64(mac)}"


def signed(private: dict[str, Any], claims: dict[str, Any], **headers: Any) -> str:
    """Sign arbitrary claims with a private JWK (its own algorithm, its kid unless overridden)."""
    key = jwt.PyJWK(private).key
    return jwt.encode(
        claims, key, algorithm=private["alg"], headers={"kid": private["kid"], **headers}
    )


@pytest.fixture(scope="module")
def es256() -> tuple[dict[str, Any], dict[str, Any]]:
    return generate_key("ES256", kid="es")


@pytest.fixture(scope="module")
def rs256() -> tuple[dict[str, Any], dict[str, Any]]:
    return generate_key("RS256", kid="rs")


def keyset(*public: dict[str, Any]) -> KeySet:
    return KeySet.from_jwks({"keys": list(public)})


def refused(keys: KeySet, token: str, **options: Any) -> AuthError:
    with pytest.raises(AuthError) as caught:
        keys.verify(token, **options)
    return caught.value


# the attack matrix -----------------------------------------------------------------------------


def test_alg_none_is_refused(es256: tuple[dict[str, Any], dict[str, Any]]) -> None:
    _, public = es256
    for header in ({"alg": "none", "kid": "es"}, {"alg": "none"}, {"alg": "None", "kid": "es"}):
        error = refused(keyset(public), forge(header, {"sub": "7", **LIVE}))
        assert error.code == "unauthorized"
        assert error.message == "token algorithm not allowed"


@pytest.mark.parametrize("kind", ["es256", "rs256"])
def test_hs256_signed_with_the_public_key_bytes_is_refused(
    kind: str, request: pytest.FixtureRequest
) -> None:
    """Algorithm confusion: an HMAC over the token keyed with the verifier's public key."""
    private, public = request.getfixturevalue(kind)
    pem = jwt.PyJWK(public).key.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    claims = {"sub": "7", **LIVE}
    for secret in (pem, json.dumps(public).encode()):
        token = hs256(secret, {"alg": "HS256", "kid": private["kid"], "typ": "JWT"}, claims)
        error = refused(keyset(public), token)
        assert error.message == "token algorithm does not match its key"
        # ...and without a kid, checked against the only key: still refused.
        token = hs256(secret, {"alg": "HS256"}, claims)
        assert refused(keyset(public), token).code == "unauthorized"


def test_a_token_of_another_allowed_algorithm_is_refused_for_the_key(
    es256: tuple[dict[str, Any], dict[str, Any]],
) -> None:
    _, public = es256
    rs_private, _ = generate_key("RS256", kid="es")  # same kid, other algorithm
    error = refused(keyset(public), signed(rs_private, {"sub": "7", **LIVE}))
    assert error.message == "token algorithm does not match its key"


def test_unknown_algorithm_in_the_header_is_refused(
    es256: tuple[dict[str, Any], dict[str, Any]],
) -> None:
    _, public = es256
    for alg in ("PS256", "ES512", "HS512", ["ES256"], None, 1):
        token = forge({"alg": alg, "kid": "es"}, {"sub": "7", **LIVE}, b"x" * 64)
        assert refused(keyset(public), token).message == "token algorithm not allowed"


def test_expired_token_is_refused_with_token_expired(
    es256: tuple[dict[str, Any], dict[str, Any]],
) -> None:
    private, public = es256
    signer = {"keys": [private], "active": "es"}
    now = time.time()
    expired = sign_token(signer, "7", ttl=60, now=now - 120)
    error = refused(keyset(public), expired)
    assert (error.code, error.message) == ("token_expired", "token expired")


def test_expiry_within_the_leeway_is_accepted(
    es256: tuple[dict[str, Any], dict[str, Any]],
) -> None:
    private, public = es256
    token = signed(private, {"sub": "7", "iat": NOW - 60, "exp": int(time.time()) - 2})
    assert keyset(public).verify(token, leeway=5).user_id == "7"
    assert refused(keyset(public), token, leeway=0).code == "token_expired"


def test_not_yet_valid_token_is_refused(es256: tuple[dict[str, Any], dict[str, Any]]) -> None:
    private, public = es256
    token = signed(private, {"sub": "7", **LIVE, "nbf": int(time.time()) + 600})
    error = refused(keyset(public), token)
    assert (error.code, error.message) == ("unauthorized", "token not yet valid")


def test_wrong_or_missing_audience_is_refused_when_configured(
    es256: tuple[dict[str, Any], dict[str, Any]],
) -> None:
    private, public = es256
    keys = keyset(public)
    good = signed(private, {"sub": "7", **LIVE, "aud": "gamesync"})
    assert keys.verify(good, audience="gamesync").user_id == "7"
    wrong = signed(private, {"sub": "7", **LIVE, "aud": "billing"})
    assert refused(keys, wrong, audience="gamesync").message == "wrong audience"
    missing = signed(private, {"sub": "7", **LIVE})
    assert refused(keys, missing, audience="gamesync").code == "unauthorized"
    # Not configured: an aud claim is neither required nor checked.
    assert keys.verify(wrong).user_id == "7"


def test_wrong_or_missing_issuer_is_refused_when_configured(
    es256: tuple[dict[str, Any], dict[str, Any]],
) -> None:
    private, public = es256
    keys = keyset(public)
    good = signed(private, {"sub": "7", **LIVE, "iss": "nommie"})
    assert keys.verify(good, issuer="nommie").user_id == "7"
    wrong = signed(private, {"sub": "7", **LIVE, "iss": "evil"})
    assert refused(keys, wrong, issuer="nommie").message == "wrong issuer"
    missing = signed(private, {"sub": "7", **LIVE})
    assert refused(keys, missing, issuer="nommie").message == "token lacks the iss claim"


def test_unknown_kid_is_refused(es256: tuple[dict[str, Any], dict[str, Any]]) -> None:
    private, public = es256
    token = signed(private, {"sub": "7", **LIVE}, kid="rotated-away")
    assert refused(keyset(public), token).message == "unknown key id"


def test_token_without_kid_needs_a_single_key_set(
    es256: tuple[dict[str, Any], dict[str, Any]],
) -> None:
    private, public = es256
    _, other = generate_key("ES256", kid="other")
    claims = {"sub": "7", **LIVE}
    token = jwt.encode(claims, jwt.PyJWK(private).key, algorithm="ES256")
    assert "kid" not in jwt.get_unverified_header(token)
    assert refused(keyset(public, other), token).message == "token has no key id"
    identity = keyset(public).verify(token)
    assert (identity.user_id, identity.kid) == ("7", "es")


def test_tampered_payload_is_refused(es256: tuple[dict[str, Any], dict[str, Any]]) -> None:
    private, public = es256
    token = sign_token({"keys": [private], "active": "es"}, "7", ttl=60)
    header, _, signature = token.split(".")
    tampered = f"{header}.{segment({'sub': 'admin', **LIVE})}.{signature}"
    assert refused(keyset(public), tampered).message == "invalid token"
    flipped = token[:-2] + ("A" if token[-2] != "A" else "B") + token[-1]
    assert refused(keyset(public), flipped).code == "unauthorized"


def test_oversized_token_is_refused_before_parsing(
    es256: tuple[dict[str, Any], dict[str, Any]],
) -> None:
    private, public = es256
    token = signed(private, {"sub": "7", **LIVE, "pad": "x" * 9000})
    assert refused(keyset(public), token).message == "token too large"


@pytest.mark.parametrize("garbage", ["", "abc", "a.b", "a.b.c", "....", "é.é.é"])
def test_malformed_token_is_refused(
    garbage: str, es256: tuple[dict[str, Any], dict[str, Any]]
) -> None:
    _, public = es256
    assert refused(keyset(public), garbage).code == "unauthorized"


def test_non_string_kid_is_refused(es256: tuple[dict[str, Any], dict[str, Any]]) -> None:
    _, public = es256
    for kid in (["es"], 1, {"k": "es"}):
        token = forge({"alg": "ES256", "kid": kid}, {"sub": "7", **LIVE}, b"x" * 64)
        assert refused(keyset(public), token).code == "unauthorized"


@pytest.mark.parametrize(
    ("claims", "message"),
    [
        ({**LIVE}, "token lacks the sub claim"),
        ({"sub": "7"}, "token lacks the exp claim"),
        ({"sub": "", **LIVE}, "the sub claim must be a non-empty string"),
        ({"sub": "x" * 257, **LIVE}, "the sub claim must be a non-empty string"),
    ],
)
def test_missing_or_bad_required_claims_are_refused(
    claims: dict[str, Any], message: str, es256: tuple[dict[str, Any], dict[str, Any]]
) -> None:
    private, public = es256
    assert refused(keyset(public), signed(private, claims)).message == message


@pytest.mark.parametrize(
    ("claims", "message"),
    [
        ({"sub": "7", "exp": NOW + 3600}, "token lacks the iat claim"),
        ({"sub": "7", "iat": "yesterday", "exp": NOW + 3600}, "the iat claim must be a number"),
        ({"sub": "7", "iat": NOW, "exp": NOW + 10 * 365 * 86_400}, "token lifetime too long"),
        ({"sub": "7", "iat": NOW, "exp": NOW + 86_401}, "token lifetime too long"),
        ({"sub": "7", "iat": NOW + 3600, "exp": NOW + 7200}, "token not yet valid"),
    ],
)
def test_a_token_must_say_when_it_was_issued_and_live_a_day_at_most(
    claims: dict[str, Any], message: str, es256: tuple[dict[str, Any], dict[str, Any]]
) -> None:
    """Issue 12.4: a ten-year token without `iat` verified fine."""
    private, public = es256
    assert refused(keyset(public), signed(private, claims)).message == message


def test_the_lifetime_limit_is_configurable(es256: tuple[dict[str, Any], dict[str, Any]]) -> None:
    private, public = es256
    day = signed(private, {"sub": "7", "iat": NOW, "exp": NOW + 86_400})
    assert keyset(public).verify(day).user_id == "7"  # exactly the default limit
    hour = signed(private, {"sub": "7", "iat": NOW, "exp": NOW + 3600})
    assert refused(keyset(public), day, max_lifetime=3599).message == ("token lifetime too long")
    assert refused(keyset(public), hour, max_lifetime=3599).message == ("token lifetime too long")
    assert keyset(public).verify(hour, max_lifetime=3600).user_id == "7"


def test_non_string_sub_is_refused(es256: tuple[dict[str, Any], dict[str, Any]]) -> None:
    private, public = es256
    assert refused(keyset(public), signed(private, {"sub": 7, **LIVE})).code == "unauthorized"


@pytest.mark.parametrize("games", ["1,2", [1, "2"], [True], [1.5], {"1": True}, 3])
def test_bad_games_claim_is_refused(
    games: Any, es256: tuple[dict[str, Any], dict[str, Any]]
) -> None:
    private, public = es256
    token = signed(private, {"sub": "7", **LIVE, "games": games})
    assert refused(keyset(public), token).message == "the games claim must be a list of game ids"


# round trips -----------------------------------------------------------------------------------


@pytest.mark.parametrize("alg", sorted(ALGORITHMS))
def test_every_algorithm_round_trips(alg: str) -> None:
    private, public = generate_key(alg, kid=f"k-{alg}")
    assert (public["kid"], public["alg"], public["use"]) == (f"k-{alg}", alg, "sig")
    assert public["kty"] == ALGORITHMS[alg]
    if alg != "HS256":
        assert not {"d", "p", "q"} & set(public)
    signer = {"keys": [private], "active": private["kid"]}
    token = sign_token(signer, "42", ttl=120, aud="gs", iss="nommie", games=[3, 1, 3], now=None)
    assert jwt.get_unverified_header(token) == {"alg": alg, "kid": f"k-{alg}", "typ": "JWT"}
    identity = keyset(public).verify(token, audience="gs", issuer="nommie")
    assert identity.user_id == "42"
    assert identity.games == frozenset({1, 3})
    assert identity.kid == f"k-{alg}"
    assert abs(identity.expires_at - (time.time() + 120)) <= 2


def test_a_key_set_verifies_with_the_key_the_kid_names() -> None:
    keys = [generate_key(alg) for alg in ("ES256", "EdDSA", "RS256")]
    ks = keyset(*(public for _, public in keys))
    assert ks.kids == sorted(public["kid"] for _, public in keys)
    for private, _ in keys:
        token = sign_token({"keys": [private], "active": private["kid"]}, "7", ttl=60)
        assert ks.verify(token).kid == private["kid"]


def test_public_jwk_strips_private_members_except_for_oct() -> None:
    rsa_private, _ = generate_key("RS256")
    assert not {"d", "p", "q", "dp", "dq", "qi"} & set(public_jwk(rsa_private))
    oct_private, oct_public = generate_key("HS256")
    assert public_jwk(oct_private) == oct_private == oct_public


def test_generate_key_refuses_an_unknown_algorithm() -> None:
    with pytest.raises(ConfigError, match="unsupported algorithm"):
        generate_key("none")


# JWKS parsing ----------------------------------------------------------------------------------


def test_jwks_with_duplicate_kids_is_refused(es256: tuple[dict[str, Any], dict[str, Any]]) -> None:
    _, public = es256
    _, twin = generate_key("EdDSA", kid="es")
    with pytest.raises(ConfigError, match="unique"):
        keyset(public, twin)


@pytest.mark.parametrize(
    ("change", "match"),
    [
        ({"alg": "RS256"}, "does not match kty"),
        ({"alg": "HS256"}, "does not match kty"),
        ({"alg": "ES384"}, "is not allowed"),
        ({"alg": "none"}, "is not allowed"),
        ({"alg": ["ES256"]}, "is not allowed"),
        ({"kty": "RSA", "alg": None}, "not a valid RS256 JWK"),
        ({"kty": "XYZ", "alg": None}, "unsupported key type"),
        ({"kid": 7}, "unique strings"),
        ({"x": "not-base64-!"}, "not a valid ES256 JWK"),
    ],
)
def test_jwks_with_a_bad_key_is_refused(
    change: dict[str, Any], match: str, es256: tuple[dict[str, Any], dict[str, Any]]
) -> None:
    _, public = es256
    jwk = {k: v for k, v in {**public, **change}.items() if v is not None}
    with pytest.raises(ConfigError, match=match):
        keyset(jwk)


@pytest.mark.parametrize("document", [[], {"keys": {}}, {"key": []}, "keys", {"keys": ["x"]}])
def test_jwks_that_is_not_a_key_list_is_refused(document: Any) -> None:
    with pytest.raises(ConfigError):
        KeySet.from_jwks(document)


def test_jwks_without_a_signing_key_is_refused(
    es256: tuple[dict[str, Any], dict[str, Any]],
) -> None:
    _, public = es256
    with pytest.raises(ConfigError, match="no signing key"):
        KeySet.from_jwks({"keys": []})
    with pytest.raises(ConfigError, match="no signing key"):
        keyset({**public, "use": "enc"})


def test_key_without_alg_gets_the_algorithm_of_its_type(
    es256: tuple[dict[str, Any], dict[str, Any]],
) -> None:
    private, public = es256
    bare = {k: v for k, v in public.items() if k != "alg"}
    token = sign_token({"keys": [private], "active": "es"}, "7", ttl=60)
    assert keyset(bare).verify(token).user_id == "7"


def test_unreadable_jwks_file_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read JWKS"):
        KeySet.from_file(tmp_path / "missing.json")
    (tmp_path / "bad.json").write_text("{not json")
    with pytest.raises(ConfigError, match="cannot read JWKS"):
        KeySet.from_file(tmp_path / "bad.json")


# signer files and the CLI ----------------------------------------------------------------------


@pytest.mark.parametrize("alg", sorted(ALGORITHMS))
def test_keys_generate_and_token_cli_round_trip(
    alg: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    directory = tmp_path / "keys"
    assert main(["keys", "generate", "--alg", alg, "--dir", str(directory)]) == 0
    capsys.readouterr()
    signer_path = directory / "signer.json"
    assert stat.S_IMODE(signer_path.stat().st_mode) == 0o600
    code = main(
        [
            "token",
            *("--signer", str(signer_path), "--sub", "u1", "--ttl", "90"),
            *("--aud", "gs", "--games", "4,2"),
        ]
    )
    assert code == 0
    token = capsys.readouterr().out.strip()
    identity = KeySet.from_file(directory / "jwks.json").verify(token, audience="gs")
    assert identity.user_id == "u1"
    assert identity.games == frozenset({2, 4})
    assert identity.kid == load_signer(signer_path)["active"]
    jwks = json.loads((directory / "jwks.json").read_text())
    if alg != "HS256":
        assert "d" not in jwks["keys"][0]


def test_token_cli_reports_a_bad_signer_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "signer.json"
    path.write_text(json.dumps({"keys": [], "active": "nope"}))
    assert main(["token", "--signer", str(path), "--sub", "u1"]) == 2
    assert "'active' must name one of the keys" in capsys.readouterr().err


def test_sign_token_refuses_a_kid_the_signer_does_not_hold(
    es256: tuple[dict[str, Any], dict[str, Any]],
) -> None:
    private, _ = es256
    with pytest.raises(ConfigError, match="no key"):
        sign_token({"keys": [private], "active": "es"}, "7", kid="missing")
