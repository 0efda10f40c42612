"""The numbers a scenario measured, with the machine they were measured on.

Each scenario prints one `FIGURES {...}` line (see it with `-s`), and appends the same JSON
object to the file named by `GAMESYNC_RELIABILITY_FIGURES` when that is set: the source of the
tables in docs/RELIABILITY.md.
"""

from __future__ import annotations

import json
import os
import time
from typing import Any

from chaos.processes import machine

__all__ = ["record"]


def record(scenario: str, size: str, figures: dict[str, Any]) -> dict[str, Any]:
    """Print and (optionally) append one scenario's figures; returns the record."""
    entry = {
        "scenario": scenario,
        "size": size,
        "at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "machine": machine(),
        "figures": figures,
    }
    line = json.dumps(entry, sort_keys=True)
    print(f"FIGURES {line}")
    path = os.environ.get("GAMESYNC_RELIABILITY_FIGURES")
    if path:
        with open(path, "a") as out:
            out.write(line + "\n")
    return entry
