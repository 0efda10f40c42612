"""The hot-path JSON codec is exact: what the standard library would read, it reads."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from gamesync.jsoncodec import dumps, loads

values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**80), max_value=2**80)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(),
    lambda children: st.lists(children) | st.dictionaries(st.text(), children),
    max_leaves=30,
)


@given(values)
def test_round_trip_matches_the_standard_library(value: Any) -> None:
    text = json.dumps(value).encode()
    assert loads(text) == json.loads(text)
    assert json.loads(dumps(loads(text))) == json.loads(text)


def test_integers_beyond_64_bits_stay_exact() -> None:
    big = 123456789012345678901234567890
    assert loads(b'{"a": %d}' % big) == {"a": big}
    assert dumps({"a": big}) == b'{"a":123456789012345678901234567890}'


@pytest.mark.parametrize("text", [b"NaN", b'{"a": Infinity}', b"{", b"[1,]", b'{"a": -Infinity}'])
def test_invalid_json_and_non_finite_numbers_are_refused(text: bytes) -> None:
    with pytest.raises(ValueError, match=r"."):
        loads(text)
