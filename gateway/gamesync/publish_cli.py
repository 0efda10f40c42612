"""`gamesync publish`: hand an envelope file to a gateway (HTTP) or to Redis."""

from __future__ import annotations

import logging
from pathlib import Path

import httpx

from gamesync.envelope import parse_envelope
from gamesync.errors import ConfigError, GameSyncError

__all__ = ["publish_file"]


def publish_file(
    game_id: int, path: Path, *, broker: str | None, url: str | None, publish_token: str | None
) -> bool:
    """Validate the envelope locally, then publish it; True if it was newer and went out."""
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise ConfigError(f"cannot read {path}: {exc}") from exc
    envelope = parse_envelope(raw, expected_game_id=game_id)
    if broker is not None:
        from gamesync.publisher import publish_sync

        return publish_sync(broker, envelope)
    if url is None or not publish_token:
        raise ConfigError("--url needs --publish-token")
    # httpx logs every request at INFO; the command prints its own one-line answer.
    httpx_log = logging.getLogger("httpx")
    level = httpx_log.level
    httpx_log.setLevel(logging.WARNING)
    try:
        response = httpx.post(
            f"{url.rstrip('/')}/v1/games/{game_id}/snapshots",
            content=raw,
            headers={
                "Authorization": f"Bearer {publish_token}",
                "Content-Type": "application/json",
            },
            timeout=10.0,
        )
    except httpx.HTTPError as exc:
        raise GameSyncError(f"cannot reach {url}: {exc}") from exc
    finally:
        httpx_log.setLevel(level)
    if response.status_code != 200:
        raise GameSyncError(f"gateway answered {response.status_code}: {response.text[:200]}")
    return bool(response.json().get("published"))
