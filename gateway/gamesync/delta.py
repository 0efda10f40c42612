"""Delta snapshots (protocol 2): a JSON Patch (RFC 6902) from one snapshot to the next. Pure.

`diff(old, new)` gives the operations that turn `old` into `new`; `apply(doc, patch)` applies
them without changing `doc` (the parts the patch does not touch are shared, not copied). The
gateway uses `diff` once per (game, base version, new version); clients use `apply`.

Only `add`, `remove` and `replace` are produced, and only those are applied. Objects are
compared key by key; arrays keep their common head and tail, pair up what is left in the middle
(element by element, recursing into containers) and remove or add the rest, which makes a card
played out of a hand one `remove` and a trick appended to a history one `add`. Values are
compared as JSON: `1`, `1.0` and `true` all differ (Python's `==` says they are equal).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from gamesync import jsoncodec

__all__ = ["PatchError", "apply", "diff"]

Patch = list[dict[str, Any]]


class PatchError(ValueError):
    """A patch that does not apply to the document it was given (its base is not this one)."""


# --- diff -------------------------------------------------------------------------------------


def diff(old: Any, new: Any) -> Patch:
    """The JSON Patch that turns `old` into `new` (empty when they are the same JSON)."""
    ops: Patch = []
    _diff(old, new, "", ops, _same_fast)
    # Containers were compared with `==` (in C, fast), which takes 1, 1.0 and true for equal.
    # The patched document's encoding shows such a swap; then the strict comparison decides.
    if jsoncodec.dumps(apply(old, ops)) == jsoncodec.dumps(new):
        return ops
    ops = []
    _diff(old, new, "", ops, _same_strict)
    return ops


def _same_fast(a: Any, b: Any) -> bool:
    """Equal as JSON, but for a 1 / 1.0 / true swap inside equal containers."""
    return a is b or (type(a) is type(b) and bool(a == b))


def _same_strict(a: Any, b: Any) -> bool:
    """Equal as JSON: the same types all the way down (Python's 1 == 1.0 == True is not)."""
    if a is b:
        return True
    kind = type(a)
    if kind is not type(b):
        return False
    if kind is dict or kind is list:
        return bool(a == b) and jsoncodec.dumps(a) == jsoncodec.dumps(b)
    return bool(a == b)


Same = Callable[[Any, Any], bool]


def _diff(old: Any, new: Any, path: str, ops: Patch, same: Same) -> None:
    if same(old, new):
        return
    if type(old) is type(new) and isinstance(old, dict | list):
        inner: Patch = []
        if isinstance(old, dict):
            _diff_dict(old, new, path, inner, same)
        else:
            _diff_list(old, new, path, inner, same)
        # Many small operations can cost more bytes than the container once (a trick's four
        # cards all new): then one `replace` of the container.
        if len(inner) > 1 and _size(inner) > len(path) + len(jsoncodec.dumps(new)) + _OP_BYTES:
            ops.append({"op": "replace", "path": path, "value": new})
        else:
            ops.extend(inner)
        return
    ops.append({"op": "replace", "path": path, "value": new})


#: The bytes of an operation besides its path and value: {"op":"replace","path":"","value":}
_OP_BYTES = 33


def _size(ops: Patch) -> int:
    """About the encoded size of `ops` (the values' exact sizes; the rest estimated)."""
    total = 0
    for op in ops:
        total += len(op["path"]) + _OP_BYTES
        if "value" in op:
            total += len(jsoncodec.dumps(op["value"]))
    return total


def _diff_dict(old: dict[str, Any], new: dict[str, Any], path: str, ops: Patch, same: Same) -> None:
    for key, value in old.items():
        where = f"{path}/{_escape(key)}"
        if key not in new:
            ops.append({"op": "remove", "path": where})
        else:
            _diff(value, new[key], where, ops, same)
    for key, value in new.items():
        if key not in old:
            ops.append({"op": "add", "path": f"{path}/{_escape(key)}", "value": value})


#: How far ahead an array diff looks for where the two arrays line up again.
_LOOK_AHEAD = 4


def _diff_list(old: list[Any], new: list[Any], path: str, ops: Patch, same: Same) -> None:
    """Walk both arrays; `at` is the index in the array as patched so far (== the index in new).

    Where they differ, a few elements removed (or added) in front that make them line up again
    (a card played out of a hand, the oldest entry of a bounded history dropped) become removes
    (adds); otherwise the two elements are paired and diffed.
    """
    n, m = len(old), len(new)
    tail = 0
    while tail < n and tail < m and same(old[n - 1 - tail], new[m - 1 - tail]):
        tail += 1
    a_end, b_end = n - tail, m - tail
    a = b = 0
    while a < a_end and b < b_end:
        if same(old[a], new[b]):
            a += 1
            b += 1
            continue
        removed = _ahead(old, a + 1, a_end, new[b], same)
        added = _ahead(new, b + 1, b_end, old[a], same)
        if removed is not None and (added is None or removed - a <= added - b):
            for _ in range(removed - a):
                ops.append({"op": "remove", "path": f"{path}/{b}"})
            a = removed
        elif added is not None:
            for i in range(b, added):
                ops.append({"op": "add", "path": f"{path}/{i}", "value": new[i]})
            b = added
        else:
            _diff(old[a], new[b], f"{path}/{b}", ops, same)
            a += 1
            b += 1
    for _ in range(a, a_end):
        ops.append({"op": "remove", "path": f"{path}/{b}"})  # each removal shifts the rest
    for i in range(b, b_end):
        ops.append({"op": "add", "path": f"{path}/{i}", "value": new[i]})


def _ahead(items: list[Any], start: int, end: int, wanted: Any, same: Same) -> int | None:
    """The index of `wanted` among the next few `items` from `start` (before `end`), if any."""
    for index in range(start, min(end, start + _LOOK_AHEAD)):
        if same(items[index], wanted):
            return index
    return None


def _escape(key: str) -> str:
    # RFC 6901 §3: "~" is "~0" and "/" is "~1" in a reference token.
    if "~" in key or "/" in key:
        return key.replace("~", "~0").replace("/", "~1")
    return key


# --- apply ------------------------------------------------------------------------------------


def apply(doc: Any, patch: Any) -> Any:
    """`doc` with `patch` applied; `doc` itself is left as it was. PatchError if it does not fit."""
    if not isinstance(patch, list):
        raise PatchError("a patch is a list of operations")
    for op in patch:
        if not isinstance(op, dict) or not isinstance(op.get("path"), str):
            raise PatchError("an operation is an object with a 'path'")
        kind = op.get("op")
        if kind not in ("add", "remove", "replace"):
            raise PatchError(f"unsupported operation {kind!r}")
        if kind != "remove" and "value" not in op:
            raise PatchError(f"'{kind}' needs a 'value'")
        doc = _apply_one(doc, kind, _tokens(op["path"]), op.get("value"))
    return doc


def _tokens(path: str) -> list[str]:
    if path == "":
        return []
    if not path.startswith("/"):
        raise PatchError(f"a path starts with '/': {path[:40]!r}")
    return [t.replace("~1", "/").replace("~0", "~") for t in path[1:].split("/")]


def _apply_one(node: Any, kind: str, tokens: list[str], value: Any) -> Any:
    """`node` with one operation applied at `tokens`, copying only the containers on the path."""
    if not tokens:
        if kind == "remove":
            raise PatchError("cannot remove the whole document")
        return value
    token, rest = tokens[0], tokens[1:]
    if isinstance(node, dict):
        if rest:
            if token not in node:
                raise PatchError(f"no member {token!r}")
            return {**node, token: _apply_one(node[token], kind, rest, value)}
        if kind == "add":
            return {**node, token: value}
        if token not in node:
            raise PatchError(f"no member {token!r} to {kind}")
        if kind == "replace":
            return {**node, token: value}
        return {k: v for k, v in node.items() if k != token}
    if isinstance(node, list):
        index = _index(token, len(node), end_allowed=kind == "add" and not rest)
        if rest:
            return [*node[:index], _apply_one(node[index], kind, rest, value), *node[index + 1 :]]
        if kind == "add":
            return [*node[:index], value, *node[index:]]
        if kind == "replace":
            return [*node[:index], value, *node[index + 1 :]]
        return [*node[:index], *node[index + 1 :]]
    raise PatchError(f"cannot reach into a {type(node).__name__} at {token!r}")


def _index(token: str, length: int, *, end_allowed: bool) -> int:
    """An array index (RFC 6901 §4); the end (`length`, or "-") only where an add may append."""
    if token == "-" and end_allowed:  # noqa: S105 (a JSON Pointer token, not a secret)
        return length
    if not token.isdigit() or (len(token) > 1 and token[0] == "0"):
        raise PatchError(f"not an array index: {token[:20]!r}")
    index = int(token)
    if index > length or (index == length and not end_allowed):
        raise PatchError(f"array index {index} out of range")
    return index
