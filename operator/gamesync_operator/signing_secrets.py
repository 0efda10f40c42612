"""The key Secrets and status.signingKeys, encoded and decoded (pure).

Signer Secret: data `signer.json` (DESIGN §4 signer file), annotations with the rotation
bookkeeping. JWKS Secret: data `jwks.json`, mounted by gateways as a directory.
"""

from __future__ import annotations

import base64
import datetime as dt
import json
from collections.abc import Mapping
from typing import Any

from gamesync_operator.errors import OperatorError
from gamesync_operator.rotation import KeysStatus, Retiring, Signer
from gamesync_operator.spec import ClusterSpec

__all__ = [
    "JWKS_KEY",
    "SIGNER_KEY",
    "SigningSecretError",
    "format_time",
    "jwks_from_secret",
    "jwks_secret",
    "keys_status_from_dict",
    "keys_status_to_dict",
    "parse_time",
    "signer_from_secret",
    "signer_secret",
]

JWKS_KEY = "jwks.json"
SIGNER_KEY = "signer.json"
_PREFIX = "gamesync.nommie.dev/"
_ACTIVATED = _PREFIX + "activated-at"
_GENERATION = _PREFIX + "key-generation"
_HANDLED = _PREFIX + "rotate-request-handled"
_REVOKED = _PREFIX + "revoked-kids"
_REVOKED_AT = _PREFIX + "revoked-at"


class SigningSecretError(OperatorError):
    """A key Secret exists but cannot be read; it is never overwritten blindly."""


def format_time(value: dt.datetime) -> str:
    """RFC 3339 in UTC with a Z (sub-second precision kept: retire times never round early)."""
    return value.astimezone(dt.UTC).isoformat().replace("+00:00", "Z")


def parse_time(value: Any) -> dt.datetime | None:
    """Parse an RFC 3339 time; None for anything absent or unreadable."""
    if not isinstance(value, str) or not value:
        return None
    try:
        parsed = dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=dt.UTC)


def _decode(secret: Mapping[str, Any], key: str) -> Any:
    data = secret.get("data") or {}
    if key not in data:
        raise SigningSecretError(f"Secret {secret.get('metadata', {}).get('name')} has no {key}")
    try:
        return json.loads(base64.b64decode(data[key]))
    except (ValueError, TypeError) as exc:
        raise SigningSecretError(
            f"{key} in Secret {secret['metadata']['name']} is not JSON"
        ) from exc


def _encode(document: Any) -> str:
    return base64.b64encode(json.dumps(document, sort_keys=True).encode()).decode()


def signer_from_secret(
    secret: Mapping[str, Any] | None, unknown_activation: dt.datetime
) -> Signer | None:
    """The Signer in a signer Secret; None when the Secret does not exist.

    `unknown_activation` stands in for a missing activation annotation (hand-made Secret).
    """
    if secret is None:
        return None
    doc = _decode(secret, SIGNER_KEY)
    annotations = secret.get("metadata", {}).get("annotations") or {}
    if not isinstance(doc, dict) or not isinstance(doc.get("keys"), list):
        raise SigningSecretError("signer.json must be a JWKS with an active kid")
    keys = {
        k["kid"]: k for k in doc["keys"] if isinstance(k, dict) and isinstance(k.get("kid"), str)
    }
    active = doc.get("active")
    if not isinstance(active, str) or active not in keys:
        raise SigningSecretError("signer.json: 'active' names no key in the file")
    activated = parse_time(annotations.get(_ACTIVATED))
    try:
        generation = int(annotations.get(_GENERATION, "1"))
        revoked = json.loads(annotations.get(_REVOKED, "[]"))
    except ValueError as exc:
        raise SigningSecretError(f"signer Secret annotations are unreadable: {exc}") from exc
    return Signer(
        keys=keys,
        active=active,
        next=doc.get("next") if doc.get("next") in keys else None,
        activated_at=activated or unknown_activation,
        generation=generation,
        handled_request=annotations.get(_HANDLED) or None,
        revoked=tuple(str(k) for k in revoked if isinstance(k, str)),
        revoked_at=parse_time(annotations.get(_REVOKED_AT)),
    )


def _meta(spec: ClusterSpec, name: str, component: str) -> dict[str, Any]:
    return {
        "name": name,
        "namespace": spec.namespace,
        "labels": {
            "app.kubernetes.io/name": "gamesync-gateway",
            "app.kubernetes.io/instance": spec.name,
            "app.kubernetes.io/component": component,
            "app.kubernetes.io/managed-by": "gamesync-operator",
        },
    }


def signer_secret(spec: ClusterSpec, signer: Signer) -> dict[str, Any]:
    """The signer Secret holding `signer` (private: mounted by the game backend only)."""
    meta = _meta(spec, spec.signing_keys.signer_secret_name, "signer")
    meta["annotations"] = {
        _ACTIVATED: format_time(signer.activated_at),
        _GENERATION: str(signer.generation),
        _HANDLED: signer.handled_request or "",
        _REVOKED: json.dumps(list(signer.revoked)),
    }
    if signer.revoked_at is not None:
        meta["annotations"][_REVOKED_AT] = format_time(signer.revoked_at)
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "type": "Opaque",
        "metadata": meta,
        "data": {SIGNER_KEY: _encode(signer.document())},
    }


def jwks_from_secret(secret: Mapping[str, Any] | None) -> dict[str, Mapping[str, Any]] | None:
    """kid -> public JWK from a JWKS Secret; None when absent or unreadable (it is derived)."""
    if secret is None:
        return None
    try:
        doc = _decode(secret, JWKS_KEY)
    except SigningSecretError:
        return None
    if not isinstance(doc, dict) or not isinstance(doc.get("keys"), list):
        return None
    return {
        k["kid"]: k for k in doc["keys"] if isinstance(k, dict) and isinstance(k.get("kid"), str)
    }


def jwks_secret(spec: ClusterSpec, document: Mapping[str, Any]) -> dict[str, Any]:
    """The JWKS Secret (public keys only) that gateways mount as a directory."""
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "type": "Opaque",
        "metadata": _meta(spec, spec.signing_keys.jwks_secret_name, "jwks"),
        "data": {JWKS_KEY: _encode(dict(document))},
    }


def keys_status_from_dict(raw: Mapping[str, Any] | None) -> KeysStatus:
    """Read status.signingKeys, tolerating anything missing."""
    raw = raw or {}
    previous = []
    for item in raw.get("previousKids") or []:
        when = parse_time(item.get("retireAt")) if isinstance(item, dict) else None
        if when is not None and isinstance(item.get("kid"), str):
            previous.append(Retiring(item["kid"], when))
    return KeysStatus(
        active_kid=raw.get("activeKid") or None,
        next_kid=raw.get("nextKid") or None,
        previous=tuple(previous),
        phase=raw.get("phase") or "Initializing",
        last_rotation_time=parse_time(raw.get("lastRotationTime")),
        next_rotation_time=parse_time(raw.get("nextRotationTime")),
        next_published_time=parse_time(raw.get("nextPublishedTime")),
        key_generation=int(raw.get("keyGeneration") or 0),
        handled_request=raw.get("handledRotateRequest") or None,
        revoked=tuple(k for k in raw.get("revokedKids") or () if isinstance(k, str)),
        last_revocation_time=parse_time(raw.get("lastRevocationTime")),
    )


def keys_status_to_dict(status: KeysStatus) -> dict[str, Any]:
    """status.signingKeys as written (times in RFC 3339)."""
    out: dict[str, Any] = {
        "activeKid": status.active_kid,
        "nextKid": status.next_kid,
        "previousKids": [
            {"kid": r.kid, "retireAt": format_time(r.retire_at)} for r in status.previous
        ],
        "phase": status.phase,
        "keyGeneration": status.key_generation,
        "handledRotateRequest": status.handled_request,
        "revokedKids": list(status.revoked),
    }
    for key, value in (
        ("lastRevocationTime", status.last_revocation_time),
        ("lastRotationTime", status.last_rotation_time),
        ("nextRotationTime", status.next_rotation_time),
        ("nextPublishedTime", status.next_published_time),
    ):
        out[key] = format_time(value) if value is not None else None
    return out
