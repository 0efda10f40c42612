"""JSON for the hot path: orjson where it is exact, the standard library where it is not.

Every envelope is parsed once and its snapshot encoded once per version, so JSON is a good part
of a gateway's CPU per publish (9.3 % at 2,000 publishes/s, profiled in docs/BENCHMARKS.md);
orjson does both several times faster.
orjson reads integers beyond 64 bits as floats, which would change a game's data, so documents
with 19 or more digits in a row (possibly such an integer) go through the standard library.
"""

from __future__ import annotations

import json
import re
from typing import Any

import orjson

__all__ = ["dumps", "loads"]

_LONG_NUMBER = re.compile(rb"\d{19}")


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")


def loads(data: bytes) -> Any:
    """Parse JSON; ValueError (or RecursionError) for invalid input, NaN and Infinity included."""
    if _LONG_NUMBER.search(data) is None:
        try:
            return orjson.loads(data)
        except orjson.JSONDecodeError as exc:
            raise ValueError(str(exc)) from exc
    return json.loads(data, parse_constant=_refuse_constant)


def dumps(value: Any) -> bytes:
    """Compact UTF-8 JSON."""
    try:
        return orjson.dumps(value)
    except TypeError:  # an integer beyond 64 bits, kept exact by the standard library
        return json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode()
