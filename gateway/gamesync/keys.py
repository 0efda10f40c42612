"""JWT keys: generation, JWKS and signer files, signing and verification (DESIGN §4)."""

from __future__ import annotations

import datetime as dt
import json
import secrets
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import jwt
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from jwt.algorithms import ECAlgorithm, HMACAlgorithm, OKPAlgorithm, RSAAlgorithm

from gamesync.errors import AuthError, ConfigError

__all__ = [
    "ALGORITHMS",
    "Identity",
    "KeySet",
    "generate_key",
    "load_signer",
    "public_jwk",
    "refuse_signing_keys",
    "sign_token",
    "write_key_dir",
]

#: Algorithms a key may use. `none` is never here; each key is bound to exactly one algorithm,
#: so an HS256 token can only ever be checked against an `oct` key (no algorithm confusion).
ALGORITHMS: dict[str, str] = {
    "ES256": "EC",
    "EdDSA": "OKP",
    "RS256": "RSA",
    "HS256": "oct",
}
_PRIVATE_MEMBERS = frozenset({"d", "p", "q", "dp", "dq", "qi", "oth"})
MAX_TOKEN_BYTES = 8 * 1024
#: The longest a token may live (`exp - iat`) unless the verifier is told otherwise.
MAX_TOKEN_LIFETIME = 86_400.0


@dataclass(frozen=True, slots=True)
class Identity:
    """Who a verified token speaks for."""

    user_id: str
    expires_at: int
    games: frozenset[int] | None
    kid: str | None
    #: the key set it was verified under, as the token cache counts them (0: none counted);
    #: not part of who it is
    generation: int = field(default=0, compare=False, repr=False)


def _new_kid(alg: str) -> str:
    day = dt.datetime.now(dt.UTC).strftime("%Y%m%d")
    return f"{alg.lower()}-{day}-{secrets.token_hex(4)}"


def generate_key(alg: str, kid: str | None = None) -> tuple[dict[str, Any], dict[str, Any]]:
    """Generate a signing key for `alg`: (private JWK, public JWK), both carrying kid/alg/use."""
    if alg not in ALGORITHMS:
        raise ConfigError(f"unsupported algorithm {alg!r}; use one of {', '.join(ALGORITHMS)}")
    kid = kid or _new_kid(alg)
    private: dict[str, Any]
    if alg == "ES256":
        private = ECAlgorithm.to_jwk(ec.generate_private_key(ec.SECP256R1()), as_dict=True)
    elif alg == "EdDSA":
        private = OKPAlgorithm.to_jwk(ed25519.Ed25519PrivateKey.generate(), as_dict=True)
    elif alg == "RS256":
        key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        private = RSAAlgorithm.to_jwk(key, as_dict=True)
    else:
        private = HMACAlgorithm.to_jwk(secrets.token_bytes(32), as_dict=True)
    private.update({"kid": kid, "alg": alg, "use": "sig"})
    return private, public_jwk(private)


def public_jwk(private: Mapping[str, Any]) -> dict[str, Any]:
    """The public half of a JWK (an `oct` key has no public half: it is returned whole)."""
    if private.get("kty") == "oct":
        return dict(private)
    return {k: v for k, v in private.items() if k not in _PRIVATE_MEMBERS}


def refuse_signing_keys(document: Any, *, allow_hs256: bool) -> None:
    """Raise ConfigError if a JWKS meant for a gateway holds keys that can sign (DESIGN §4).

    A private member (`d`, ...) means a signer file was given where the public JWKS belongs;
    an `oct` key is a shared secret that verifies and signs alike, so it needs `allow_hs256`.
    """
    entries = document.get("keys") if isinstance(document, dict) else None
    for jwk in entries if isinstance(entries, list) else ():
        if not isinstance(jwk, dict):
            continue  # KeySet.from_jwks names malformed entries
        kid = jwk.get("kid")
        if jwk.get("kty") == "oct":
            if not allow_hs256:
                raise ConfigError(
                    f"key {kid!r} is an HS256 shared secret, which can sign tokens too; "
                    "use public keys, or --allow-hs256 to accept it"
                )
            continue
        private = sorted(_PRIVATE_MEMBERS & jwk.keys())
        if private:
            raise ConfigError(
                f"key {kid!r} holds private key material ({', '.join(private)}): "
                "gateways take the public jwks.json, never a signer file"
            )


def _infer_alg(jwk: Mapping[str, Any]) -> str:
    kty = jwk.get("kty")
    alg = jwk.get("alg")
    if alg is not None:
        if not isinstance(alg, str) or alg not in ALGORITHMS:
            raise ConfigError(f"key {jwk.get('kid')!r}: algorithm {alg!r} is not allowed")
        if ALGORITHMS[alg] != kty:
            raise ConfigError(f"key {jwk.get('kid')!r}: alg {alg} does not match kty {kty}")
        return str(alg)
    for name, key_type in ALGORITHMS.items():
        if key_type == kty:
            return name
    raise ConfigError(f"key {jwk.get('kid')!r}: unsupported key type {kty!r}")


def _key_object(jwk: Mapping[str, Any], alg: str) -> Any:
    text = json.dumps(dict(jwk))
    try:
        if alg == "ES256":
            return ECAlgorithm.from_jwk(text)
        if alg == "EdDSA":
            return OKPAlgorithm.from_jwk(text)
        if alg == "RS256":
            return RSAAlgorithm.from_jwk(text)
        return HMACAlgorithm.from_jwk(text)
    except (jwt.InvalidKeyError, ValueError, KeyError, TypeError) as exc:
        raise ConfigError(f"key {jwk.get('kid')!r} is not a valid {alg} JWK: {exc}") from exc


@dataclass(frozen=True, slots=True)
class _Key:
    kid: str | None
    alg: str
    key: Any


class KeySet:
    """Verification keys from a JWKS document; verifies tokens against them."""

    def __init__(self, keys: Iterable[_Key]) -> None:
        self._keys = tuple(keys)
        self._by_kid = {k.kid: k for k in self._keys if k.kid is not None}

    @classmethod
    def from_jwks(cls, document: Any) -> KeySet:
        """Parse a JWKS document; raise ConfigError naming the first bad key."""
        if not isinstance(document, dict) or not isinstance(document.get("keys"), list):
            raise ConfigError('a JWKS document must be an object with a "keys" list')
        keys: list[_Key] = []
        seen: set[str] = set()
        for jwk in document["keys"]:
            if not isinstance(jwk, dict):
                raise ConfigError("every JWKS entry must be an object")
            if jwk.get("use", "sig") != "sig":
                continue
            alg = _infer_alg(jwk)
            kid = jwk.get("kid")
            if kid is not None:
                if not isinstance(kid, str) or kid in seen:
                    raise ConfigError(f"key ids must be unique strings (got {kid!r})")
                seen.add(kid)
            keys.append(_Key(kid=kid, alg=alg, key=_key_object(jwk, alg)))
        if not keys:
            raise ConfigError("the JWKS document holds no signing key")
        return cls(keys)

    @classmethod
    def from_file(cls, path: Path) -> KeySet:
        """Read and parse a JWKS file."""
        try:
            document = json.loads(path.read_bytes())
        except (OSError, ValueError) as exc:
            raise ConfigError(f"cannot read JWKS {path}: {exc}") from exc
        return cls.from_jwks(document)

    @property
    def kids(self) -> list[str]:
        """The key ids loaded, sorted."""
        return sorted(self._by_kid)

    def verify(
        self,
        token: str,
        *,
        audience: str | None = None,
        issuer: str | None = None,
        leeway: float = 5.0,
        max_lifetime: float = MAX_TOKEN_LIFETIME,
    ) -> Identity:
        """Verify a compact JWS and return its identity, or raise AuthError.

        The token must carry `sub`, `exp` and `iat`, and live at most `max_lifetime` seconds
        (`exp - iat`): a leaked long-lived token is worth no more than a day by default.
        """
        if len(token) > MAX_TOKEN_BYTES:
            raise AuthError("unauthorized", "token too large")
        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError as exc:
            raise AuthError("unauthorized", "malformed token") from exc
        alg = header.get("alg")
        if not isinstance(alg, str) or alg not in ALGORITHMS:
            raise AuthError("unauthorized", "token algorithm not allowed")
        kid = header.get("kid")
        if kid is not None:
            key = self._by_kid.get(kid)
            if key is None:
                raise AuthError("unauthorized", "unknown key id")
        elif len(self._keys) == 1:
            key = self._keys[0]
        else:
            raise AuthError("unauthorized", "token has no key id")
        if key.alg != alg:
            raise AuthError("unauthorized", "token algorithm does not match its key")
        options: dict[str, Any] = {
            "require": ["exp", "iat", "sub"],
            "verify_aud": audience is not None,
        }
        try:
            claims = jwt.decode(
                token,
                key=key.key,
                algorithms=[key.alg],
                audience=audience,
                issuer=issuer,
                leeway=leeway,
                options=options,  # type: ignore[arg-type]
            )
        except jwt.ExpiredSignatureError as exc:
            raise AuthError("token_expired", "token expired") from exc
        except jwt.ImmatureSignatureError as exc:
            raise AuthError("unauthorized", "token not yet valid") from exc
        except jwt.InvalidAudienceError as exc:
            raise AuthError("unauthorized", "wrong audience") from exc
        except jwt.InvalidIssuerError as exc:
            raise AuthError("unauthorized", "wrong issuer") from exc
        except jwt.MissingRequiredClaimError as exc:
            raise AuthError("unauthorized", f"token lacks the {exc.claim} claim") from exc
        except jwt.InvalidIssuedAtError as exc:
            raise AuthError("unauthorized", "the iat claim must be a number") from exc
        except jwt.PyJWTError as exc:
            raise AuthError("unauthorized", "invalid token") from exc
        return _identity(claims, key.kid, max_lifetime)


def _identity(claims: Mapping[str, Any], kid: str | None, max_lifetime: float) -> Identity:
    sub = claims.get("sub")
    exp = claims.get("exp")
    iat = claims.get("iat")
    if not isinstance(sub, str) or not sub or len(sub) > 256:
        raise AuthError("unauthorized", "the sub claim must be a non-empty string")
    if not isinstance(exp, int | float) or isinstance(exp, bool):
        raise AuthError("unauthorized", "the exp claim must be a number")
    if not isinstance(iat, int | float) or isinstance(iat, bool):
        raise AuthError("unauthorized", "the iat claim must be a number")
    if exp - iat > max_lifetime:
        raise AuthError("unauthorized", "token lifetime too long")
    games: frozenset[int] | None = None
    raw_games = claims.get("games")
    if raw_games is not None:
        if not isinstance(raw_games, list) or not all(
            isinstance(g, int) and not isinstance(g, bool) for g in raw_games
        ):
            raise AuthError("unauthorized", "the games claim must be a list of game ids")
        games = frozenset(raw_games)
    return Identity(user_id=sub, expires_at=int(exp), games=games, kid=kid)


def load_signer(path: Path) -> dict[str, Any]:
    """Read a signer file: a JWKS of private keys plus `active` (and maybe `next`)."""
    try:
        signer = json.loads(path.read_bytes())
    except (OSError, ValueError) as exc:
        raise ConfigError(f"cannot read signer file {path}: {exc}") from exc
    if not isinstance(signer, dict) or not isinstance(signer.get("keys"), list):
        raise ConfigError(f"{path}: a signer file is a JWKS with an 'active' kid")
    kids = {k.get("kid") for k in signer["keys"] if isinstance(k, dict)}
    if signer.get("active") not in kids:
        raise ConfigError(f"{path}: 'active' must name one of the keys")
    return signer


def sign_token(
    signer: Mapping[str, Any],
    sub: str,
    *,
    ttl: int = 3600,
    aud: str | None = None,
    iss: str | None = None,
    games: Iterable[int] | None = None,
    now: float | None = None,
    kid: str | None = None,
) -> str:
    """Sign a token for `sub` with the signer's active key (or `kid`)."""
    wanted = kid or signer.get("active")
    jwk = next((k for k in signer["keys"] if k.get("kid") == wanted), None)
    if jwk is None:
        raise ConfigError(f"signer has no key {wanted!r}")
    alg = _infer_alg(jwk)
    issued = int(time.time() if now is None else now)
    claims: dict[str, Any] = {"sub": sub, "iat": issued, "exp": issued + ttl}
    if aud is not None:
        claims["aud"] = aud
    if iss is not None:
        claims["iss"] = iss
    if games is not None:
        claims["games"] = sorted(set(games))
    return jwt.encode(claims, _key_object(jwk, alg), algorithm=alg, headers={"kid": jwk["kid"]})


def write_key_dir(directory: Path, alg: str) -> tuple[Path, Path]:
    """Write DIR/jwks.json (public) and DIR/signer.json (private, mode 0600)."""
    private, public = generate_key(alg)
    directory.mkdir(parents=True, exist_ok=True)
    jwks_path = directory / "jwks.json"
    signer_path = directory / "signer.json"
    signer_path.touch(mode=0o600, exist_ok=True)
    signer_path.chmod(0o600)
    signer_path.write_text(json.dumps({"keys": [private], "active": private["kid"]}, indent=2))
    jwks_path.write_text(json.dumps({"keys": [public]}, indent=2))
    return jwks_path, signer_path
