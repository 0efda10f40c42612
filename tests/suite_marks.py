"""How a suite folder marks its tests at collection: skipped without redis-server, the large
sizes only with `-m slow`, and an optional marker of the folder's own (`chaos`, `fuzz`)."""

from __future__ import annotations

from pathlib import Path

import pytest

from redis_servers import redis_available

__all__ = ["mark_folder"]

NO_REDIS = "redis-server is not installed (scripts/test installs it)"


def mark_folder(
    config: pytest.Config,
    items: list[pytest.Item],
    folder: Path,
    *,
    slow_reason: str,
    redis: str = "marked",
    marker: pytest.MarkDecorator | None = None,
) -> None:
    """Mark the items under `folder`. `redis`: "marked" skips the tests marked `redis` when
    redis-server is missing, "all" skips every test of the folder then, "none" never."""
    wants_slow = "slow" in (config.option.markexpr or "")
    missing_redis = redis != "none" and not redis_available()
    for item in items:
        if folder not in item.path.parents:
            continue
        if marker is not None:
            item.add_marker(marker)
        if missing_redis and (redis == "all" or "redis" in item.keywords):
            item.add_marker(pytest.mark.skip(reason=NO_REDIS))
        if "slow" in item.keywords and not wants_slow:
            item.add_marker(pytest.mark.skip(reason=slow_reason))
