"""The delta formats weighed for protocol 2, for the ``bandwidth`` benchmark to compare.

The gateway ships one of them, JSON Patch (RFC 6902, :mod:`gamesync.delta`). The others are
here only to be measured next to it on the same snapshots:
- an RFC 7386 JSON Merge Patch: compact for objects, but an array that changes goes whole (a
  hand, a growing trick history) and `null` cannot be a value;
- a text delta over the snapshot's JSON bytes in fossil's delta format (what Centrifugo uses):
  copy and insert commands, base-64 numbers. Matching uses ``bytes.find`` on 16-byte windows,
  the fastest this can be without a native dependency. A client would have to hold the exact
  bytes of the base, so a full snapshot would carry its data as a JSON string.
"""

from __future__ import annotations

import zlib
from typing import Any

__all__ = ["fossil_delta", "merge_patch"]


def merge_patch(old: Any, new: Any) -> Any:
    """The RFC 7386 merge patch from `old` to `new` (`null` removes a member)."""
    if not isinstance(old, dict) or not isinstance(new, dict):
        return new
    patch: dict[str, Any] = {}
    for key, value in old.items():
        if key not in new:
            patch[key] = None
        elif not _same(value, new[key]):
            patch[key] = merge_patch(value, new[key])
    for key, value in new.items():
        if key not in old:
            patch[key] = value
    return patch


def _same(a: Any, b: Any) -> bool:
    return type(a) is type(b) and bool(a == b)


_B64 = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ_abcdefghijklmnopqrstuvwxyz~"
_WINDOW = 16


def _b64(number: int) -> bytes:
    if number == 0:
        return b"0"
    digits = bytearray()
    while number:
        digits.append(_B64[number & 63])
        number >>= 6
    return bytes(reversed(digits))


def fossil_delta(source: bytes, target: bytes) -> bytes:
    """`target` as a delta from `source` in fossil's format: `N\\n`, then `count@offset,`
    (copy from the source) and `count:bytes` (insert), then `checksum;`."""
    out = [_b64(len(target)), b"\n"]
    n, size = len(target), len(source)
    i = literal = hint = 0
    while i + _WINDOW <= n:
        window = target[i : i + _WINDOW]
        at = source.find(window, hint)
        if at < 0:
            at = source.find(window)
        if at < 0:
            i += 1
            continue
        end_t, end_s = i + _WINDOW, at + _WINDOW
        step = 256
        while step:  # extend the match forward, in shrinking blocks compared in C
            while (
                end_t + step <= n
                and end_s + step <= size
                and target[end_t : end_t + step] == source[end_s : end_s + step]
            ):
                end_t += step
                end_s += step
            step //= 4
        start_t, start_s = i, at
        while start_t > literal and start_s > 0 and target[start_t - 1] == source[start_s - 1]:
            start_t -= 1
            start_s -= 1
        if start_t > literal:
            out += [_b64(start_t - literal), b":", target[literal:start_t]]
        out += [_b64(end_t - start_t), b"@", _b64(start_s), b","]
        i = literal = end_t
        hint = end_s
    if literal < n:
        out += [_b64(n - literal), b":", target[literal:]]
    out += [_b64(zlib.adler32(target)), b";"]  # fossil's own checksum is as long
    return b"".join(out)
