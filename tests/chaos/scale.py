"""Two sizes per scenario: the CI size (default) and the large size (opt-in with `-m slow`).

The large figures are the ones docs/RELIABILITY.md reports; run them in a shell with
`ulimit -n 20000` (scripts/test raises it too).
"""

from __future__ import annotations

from typing import Any

import pytest

__all__ = ["sizes"]


def sizes(ci: Any, large: Any, *, large_timeout: float = 600) -> list[Any]:
    """`parametrize` values: `ci`, and `large` marked slow with its own timeout."""
    return [
        pytest.param(ci, id="ci"),
        pytest.param(
            large, id="large", marks=[pytest.mark.slow, pytest.mark.timeout(large_timeout)]
        ),
    ]
