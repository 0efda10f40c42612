"""Keys and tokens for benchmark runs: a JWKS for the gateway, one token per connection.

ES256 keys from ``gamesync.keys`` (the gateway's default algorithm). Each connection gets its
own ``sub`` so per-user connection limits never trip; authorization is ``open`` in benches.
"""

from __future__ import annotations

import json
import secrets
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from gamesync import keys

__all__ = ["Credentials", "make_credentials"]


@dataclass(frozen=True)
class Credentials:
    jwks_path: Path
    tokens_path: Path
    publish_token: str


def make_credentials(directory: Path, users: int, ttl: int = 7200) -> Credentials:
    """Write ``jwks.json`` and ``tokens.txt`` (line i: token of user ``u{i}``) to ``directory``."""
    directory.mkdir(parents=True, exist_ok=True)
    now = int(time.time())
    private, public = keys.generate_key("ES256", "bench")
    signer: dict[str, Any] = {"keys": [private], "active": private["kid"]}
    tokens = [keys.sign_token(signer, f"u{i}", ttl=ttl, now=now) for i in range(users)]
    jwks_path = directory / "jwks.json"
    jwks_path.write_text(json.dumps({"keys": [public]}))
    tokens_path = directory / "tokens.txt"
    tokens_path.write_text("\n".join(tokens) + "\n")
    return Credentials(jwks_path, tokens_path, secrets.token_urlsafe(24))
