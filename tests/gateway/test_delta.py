"""JSON Patch between snapshots (gamesync.delta): what `diff` makes, `apply` turns back into
the new snapshot, exactly, for any pair of JSON documents."""

from __future__ import annotations

import copy
import json
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gamesync.delta import PatchError, apply, diff

scalars = st.none() | st.booleans() | st.integers(-(2**63), 2**63) | st.text(max_size=5)
scalars |= st.floats(allow_nan=False, allow_infinity=False)
keys = st.sampled_from(["a", "b", "c", "~", "/", "a/b", "~1", ""])
documents = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=6) | st.dictionaries(keys, inner, max_size=5),
    max_leaves=25,
)


def as_json(value: Any) -> str:
    """The value as JSON text: types told apart (1, 1.0 and true differ), key order kept."""
    return json.dumps(value, sort_keys=False)


@settings(max_examples=400)
@given(documents, documents)
def test_applying_the_diff_gives_the_new_document_exactly(old: Any, new: Any) -> None:
    before = copy.deepcopy(old)
    patch = diff(old, new)
    result = apply(old, patch)
    assert json.loads(as_json(result)) == new
    assert _typed(result) == _typed(new)
    assert as_json(old) == as_json(before), "diff and apply leave the old document alone"
    assert json.loads(json.dumps(patch)) == patch, "a patch is plain JSON"


@given(documents)
def test_the_same_document_needs_no_operation(doc: Any) -> None:
    assert diff(doc, copy.deepcopy(doc)) == []


@pytest.mark.parametrize(
    ("old", "new"),
    [({"a": [1, 2]}, {"a": [True, 2]}), ({"a": 1}, {"a": 1.0}), ([[0]], [[False]])],
)
def test_one_one_point_zero_and_true_are_different_values(old: Any, new: Any) -> None:
    """Python's `==` says they are equal; JSON (and a JavaScript client) says they are not."""
    assert diff(old, new) != []
    assert _typed(apply(old, diff(old, new))) == _typed(new)


def test_a_card_played_out_of_a_hand_is_one_remove() -> None:
    hand = ["2C", "7C", "QD", "3H", "9S"]
    assert diff({"hand": hand}, {"hand": ["2C", "7C", "3H", "9S"]}) == [
        {"op": "remove", "path": "/hand/2"}
    ]


def test_a_bounded_history_sliding_by_one_is_a_remove_and_an_add() -> None:
    old = [{"trick": i, "cards": ["AS", "2S", "3S", "4S"]} for i in range(50)]
    new = [*old[1:], {"trick": 50, "cards": ["5S", "6S", "7S", "8S"]}]
    assert diff({"history": old}, {"history": new}) == [
        {"op": "remove", "path": "/history/0"},
        {"op": "add", "path": "/history/49", "value": new[-1]},
    ]


def test_many_changes_in_a_small_container_become_one_replace() -> None:
    old = {"trick": {"cards": [[0, "2C"], [1, "3C"], [2, "4C"], [3, "5C"]], "winner": 3}}
    new = {"trick": {"cards": [[0, "AH"], [1, "KH"], [2, "QH"], [3, "JH"]], "winner": 0}}
    assert diff(old, new) == [{"op": "replace", "path": "/trick", "value": new["trick"]}]


def test_keys_are_escaped_as_rfc_6901_says() -> None:
    unchanged = {"rest": "x" * 200}  # (else one `replace` of the whole is shorter)
    old, new = {"a/b": 1, "m~n": 2, **unchanged}, {"a/b": 3, "m~n": 4, **unchanged}
    patch = diff(old, new)
    assert [op["path"] for op in patch] == ["/a~1b", "/m~0n"]
    assert apply(old, patch) == new


def test_apply_shares_what_the_patch_does_not_touch() -> None:
    """Unchanged parts keep their identity (a React tree re-renders only what changed)."""
    old = {"game": {"seats": [1, 2]}, "phase": {"to_act": 1}}
    new = apply(old, [{"op": "replace", "path": "/phase/to_act", "value": 2}])
    assert new["game"] is old["game"]
    assert old["phase"]["to_act"] == 1


@pytest.mark.parametrize(
    "patch",
    [
        [{"op": "replace", "path": "/missing", "value": 1}],
        [{"op": "remove", "path": "/list/5"}],
        [{"op": "add", "path": "/list/01", "value": 1}],
        [{"op": "move", "from": "/a", "path": "/b"}],
        [{"op": "add", "path": "/a/b/c", "value": 1}],
        [{"op": "replace", "path": "no-slash", "value": 1}],
        [{"op": "add", "path": "/list/-"}],
        [{"op": "remove", "path": ""}],
        {"op": "add"},
        ["not an operation"],
    ],
)
def test_a_patch_that_does_not_fit_is_refused(patch: Any) -> None:
    with pytest.raises(PatchError):
        apply({"a": 1, "list": [1, 2]}, patch)


def test_append_with_a_dash_and_at_the_end_index() -> None:
    doc = {"list": [1]}
    assert apply(doc, [{"op": "add", "path": "/list/-", "value": 2}]) == {"list": [1, 2]}
    assert apply(doc, [{"op": "add", "path": "/list/1", "value": 2}]) == {"list": [1, 2]}


def _typed(value: Any) -> Any:
    """`value` with every scalar tagged by its type, so that 1, 1.0 and True compare unequal."""
    if isinstance(value, dict):
        return {k: _typed(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_typed(v) for v in value]
    return (type(value).__name__, value)
