"""Two sizes per scenario: the CI size (default) and the large size (opt-in with `-m slow`).

The large figures are the ones docs/RELIABILITY.md reports; run them in a shell with
`ulimit -n 20000` (scripts/test raises it too).
"""

from __future__ import annotations

from typing import Any

import pytest

__all__ = ["sizes"]


def sizes(ci: Any, large: Any, *, ci_timeout: float = 120, large_timeout: float = 600) -> list[Any]:
    """`parametrize` values: `ci`, and `large` marked slow, each with its own timeout."""
    return [
        pytest.param(ci, id="ci", marks=pytest.mark.timeout(ci_timeout)),
        pytest.param(
            large, id="large", marks=[pytest.mark.slow, pytest.mark.timeout(large_timeout)]
        ),
    ]
