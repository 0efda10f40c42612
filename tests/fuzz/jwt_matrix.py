"""The JWT matrix: crafted tokens a gateway must refuse, and the answer each must get.

One row per attack on token verification (DESIGN §4). The rows are the data of
`test_jwt_matrix.py` and of the table in docs/RELIABILITY.md (`render_table`): a test compares
the two, so the document cannot drift from what is tested.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import jwt
from cryptography.hazmat.primitives import serialization
from jwt.algorithms import ECAlgorithm, RSAAlgorithm

from gamesync.keys import generate_key

__all__ = ["AUDIENCE", "CONTROL", "ISSUER", "ROWS", "Answer", "Row", "World", "render_table"]

AUDIENCE = "gamesync"
ISSUER = "https://backend.example"


@dataclass(frozen=True)
class Answer:
    """How the gateway must refuse: a close code and `error` code, or an HTTP status."""

    close: int | None = None
    error: str | None = None
    http: int | None = None

    def __str__(self) -> str:
        if self.http is not None:
            return f"HTTP {self.http}"
        text = f"close {self.close}"
        return f"{text}, `{self.error}`" if self.error else text


UNAUTHORIZED = Answer(4401, "unauthorized")
EXPIRED = Answer(4401, "token_expired")
#: a first message (or renewal) longer than --max-frame-bytes (4 KiB) never reaches the verifier
FRAME_TOO_BIG = Answer(1009)


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _segment(doc: dict[str, Any]) -> str:
    return _b64(json.dumps(doc, separators=(",", ":")).encode())


class World:
    """The gateway's keys (an ES256 and an RS256 public key), an attacker's key, the clock."""

    def __init__(self) -> None:
        self.es_private, self.es_public = generate_key("ES256", kid="es-1")
        self.rs_private, self.rs_public = generate_key("RS256", kid="rs-1")
        self.attacker, _ = generate_key("ES256", kid="es-1")  # same kid, another key
        self.now = int(time.time())

    @property
    def jwks(self) -> dict[str, Any]:
        return {"keys": [self.es_public, self.rs_public]}

    def claims(self, **changes: Any) -> dict[str, Any]:
        """Good claims (10 minutes), with `changes` applied; a None value removes a claim."""
        claims: dict[str, Any] = {
            "sub": "7",
            "iat": self.now,
            "exp": self.now + 600,
            "aud": AUDIENCE,
            "iss": ISSUER,
        }
        claims.update(changes)
        return {k: v for k, v in claims.items() if v is not None}

    def sign(
        self, claims: dict[str, Any], *, jwk: dict[str, Any] | None = None, **headers: Any
    ) -> str:
        """Sign with a private JWK (default: the gateway's ES256 key) and extra headers."""
        jwk = jwk or self.es_private
        headers = {"kid": jwk["kid"], **headers}
        if jwk["alg"] == "ES256":
            key: Any = ECAlgorithm.from_jwk(json.dumps(jwk))
        else:
            key = RSAAlgorithm.from_jwk(json.dumps(jwk))
        return jwt.encode(claims, key, algorithm=jwk["alg"], headers=headers)

    def sign_by_hand(self, header: dict[str, Any], claims: dict[str, Any]) -> str:
        """ES256 with the gateway's key over any header (PyJWT refuses some, e.g. `kid: 1`)."""
        algorithm = ECAlgorithm(ECAlgorithm.SHA256)
        key = ECAlgorithm.from_jwk(json.dumps(self.es_private))
        signing = f"{_segment({'alg': 'ES256', 'typ': 'JWT', **header})}.{_segment(claims)}"
        return f"{signing}.{_b64(algorithm.sign(signing.encode(), key))}"  # type: ignore[arg-type]

    def hs256(self, claims: dict[str, Any], secret: bytes, **headers: Any) -> str:
        """An HS256 token made by hand: the way to use a public key's bytes as the secret."""
        signing = f"{_segment({'alg': 'HS256', 'typ': 'JWT', **headers})}.{_segment(claims)}"
        mac = hmac.new(secret, signing.encode(), hashlib.sha256).digest()
        return f"{signing}.{_b64(mac)}"

    def unsigned(self, claims: dict[str, Any], alg: str) -> str:
        return f"{_segment({'alg': alg, 'typ': 'JWT', 'kid': 'es-1'})}.{_segment(claims)}."

    def public_pem(self, jwk: dict[str, Any]) -> bytes:
        algorithm = ECAlgorithm if jwk["kty"] == "EC" else RSAAlgorithm
        key = algorithm.from_jwk(json.dumps(jwk))
        return key.public_bytes(  # type: ignore[union-attr]
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )


def _tamper_payload(token: str, world: World) -> str:
    head, _, sig = token.split(".")
    return f"{head}.{_segment(world.claims(sub='1'))}.{sig}"


def _tamper_signature(token: str) -> str:
    head, body, sig = token.split(".")
    raw = bytearray(base64.urlsafe_b64decode(sig + "=" * (-len(sig) % 4)))
    raw[len(raw) // 2] ^= 0x01
    return f"{head}.{body}.{_b64(bytes(raw))}"


@dataclass(frozen=True)
class Row:
    """One crafted token and the answers it must get by handshake and by message."""

    case: str
    how: str
    make: Callable[[World], str]
    by_header: Answer = UNAUTHORIZED
    by_message: Answer = UNAUTHORIZED
    #: what the gateway still lacks for this row, by channel ("" for none): known failures
    missing: dict[str, str] = field(default_factory=dict)


#: A good token, to prove the harness can tell acceptance from refusal.
CONTROL = Row("control", "a correct ES256 token", lambda w: w.sign(w.claims()))

ROWS: tuple[Row, ...] = (
    Row("alg none", "`alg: none`, no signature", lambda w: w.unsigned(w.claims(), "none")),
    Row(
        "alg None",
        "`alg: None` (another spelling), no signature",
        lambda w: w.unsigned(w.claims(), "None"),
    ),
    Row(
        "HS/ES confusion",
        "HS256 with the ES256 public key's PEM as the HMAC secret",
        lambda w: w.hs256(w.claims(), w.public_pem(w.es_public), kid="es-1"),
    ),
    Row(
        "HS/RS confusion",
        "HS256 with the RS256 public key's PEM as the HMAC secret",
        lambda w: w.hs256(w.claims(), w.public_pem(w.rs_public), kid="rs-1"),
    ),
    Row(
        "HS/JWK confusion",
        "HS256 with the public JWK's JSON as the HMAC secret",
        lambda w: w.hs256(w.claims(), json.dumps(w.rs_public).encode(), kid="rs-1"),
    ),
    Row(
        "alg/key mismatch",
        "RS256 header naming the ES256 key (signed with the RS256 key)",
        lambda w: w.sign(w.claims(), jwk=w.rs_private, kid="es-1"),
    ),
    Row("kid unknown", "`kid` of no loaded key", lambda w: w.sign(w.claims(), kid="nope")),
    Row(
        "kid missing",
        "no `kid` while two keys are loaded",
        lambda w: jwt.encode(
            w.claims(), ECAlgorithm.from_jwk(json.dumps(w.es_private)), algorithm="ES256"
        ),
    ),
    Row(
        "kid path",
        "`kid` of `..` segments up to a file every host has",
        lambda w: w.sign(w.claims(), kid="/".join([".."] * 3 + ["dev", "null"])),
    ),
    Row("kid not a string", "`kid: 1`", lambda w: w.sign_by_hand({"kid": 1}, w.claims())),
    Row(
        "kid of another key",
        "right `kid`, signed by the attacker's key",
        lambda w: w.sign(w.claims(), jwk=w.attacker),
    ),
    Row(
        "embedded jwk",
        "attacker's key in the `jwk` header, signed with it",
        lambda w: jwt.encode(
            w.claims(),
            ECAlgorithm.from_jwk(json.dumps(w.attacker)),
            algorithm="ES256",
            headers={"kid": "es-1", "jwk": {k: v for k, v in w.attacker.items() if k != "d"}},
        ),
    ),
    Row(
        "jku",
        "`jku` pointing at the attacker's key set",
        lambda w: w.sign(w.claims(), jwk=w.attacker, jku="http://127.0.0.1:9/jwks.json"),
    ),
    Row(
        "expired",
        "`exp` an hour ago",
        lambda w: w.sign(w.claims(iat=w.now - 7200, exp=w.now - 3600)),
        by_header=EXPIRED,
        by_message=EXPIRED,
    ),
    Row("not yet valid", "`nbf` in an hour", lambda w: w.sign(w.claims(nbf=w.now + 3600))),
    Row(
        "iat missing",
        "no `iat`",
        lambda w: w.sign(w.claims(iat=None)),
    ),
    Row(
        "lifetime too long",
        "`exp - iat` of ten years",
        lambda w: w.sign(w.claims(exp=w.now + 10 * 365 * 86400)),
    ),
    Row("exp missing", "no `exp`", lambda w: w.sign(w.claims(exp=None))),
    Row("exp not a number", '`exp: "9999999999"`', lambda w: w.sign(w.claims(exp="9999999999"))),
    Row("sub missing", "no `sub`", lambda w: w.sign(w.claims(sub=None))),
    Row("sub not a string", "`sub: 7`", lambda w: w.sign(w.claims(sub=7))),
    Row("wrong aud", "`aud` of another service", lambda w: w.sign(w.claims(aud="other"))),
    Row("aud missing", "no `aud` (one is required)", lambda w: w.sign(w.claims(aud=None))),
    Row("wrong iss", "`iss` of another issuer", lambda w: w.sign(w.claims(iss="https://evil"))),
    Row(
        "tampered payload",
        "`sub` changed after signing",
        lambda w: _tamper_payload(w.sign(w.claims()), w),
    ),
    Row(
        "tampered signature",
        "one bit of the signature flipped",
        lambda w: _tamper_signature(w.sign(w.claims())),
    ),
    Row(
        "8 KiB+",
        "a correctly signed token of 9 KiB (a padded claim)",
        lambda w: w.sign(w.claims(pad="x" * 9000)),
        by_header=Answer(http=431),
        by_message=FRAME_TOO_BIG,
    ),
    Row("not a JWT", "random text", lambda w: "not-a-token"),
    Row(
        "two segments",
        "header and payload only",
        lambda w: ".".join(w.sign(w.claims()).split(".")[:2]),
    ),
    Row(
        "unknown crit",
        "`crit` naming an extension nobody implements",
        lambda w: w.sign(w.claims(), crit=["x-unknown"], **{"x-unknown": True}),
    ),
)


def render_table() -> str:
    """The Markdown table docs/RELIABILITY.md carries, from `ROWS`."""
    lines = [
        "| # | case | token | by handshake header | by first message or renewal |",
        "|---|---|---|---|---|",
    ]
    gaps: list[str] = []
    for n, row in enumerate(ROWS, 1):
        cells = []
        for channels, answer in (
            (("header",), row.by_header),
            (("message", "renewal"), row.by_message),
        ):
            missing = sorted({row.missing[c] for c in channels if c in row.missing})
            cells.append(f"{answer} (not yet)" if missing else str(answer))
            gaps += [
                f"- row {n} ({row.case}, {'/'.join(c for c in channels if c in row.missing)}): {m}"
                for m in missing
            ]
        lines.append(f"| {n} | {row.case} | {row.how} | {cells[0]} | {cells[1]} |")
    if gaps:
        lines += [
            "",
            "Not yet (these rows fail today; their tests are marked xfail, strict):",
            *gaps,
        ]
    return "\n".join(lines)
