"""``ApiResponse.json`` parses with pydantic_core first and the stdlib when that refuses: the result is always
exactly what ``json.loads`` gives (values, types, key order, duplicate keys, NaN, big numbers), and a body
neither accepts still raises ``ValueError``."""

from __future__ import annotations

import json
import math
from typing import Any

import httpx
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from airflow_provider_spotzee.transport import ApiResponse

json_values = st.recursive(
    st.one_of(st.none(), st.booleans(), st.integers(), st.integers(-(2**80), 2**80), st.floats(), st.text()),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=5), inner, max_size=4),
    max_leaves=12)


def _same(a: Any, b: Any) -> bool:
    """Equal including types, key order and NaN (NaN != NaN in Python)."""
    if isinstance(a, float) and isinstance(b, float):
        return (math.isnan(a) and math.isnan(b)) or (a == b and math.copysign(1, a) == math.copysign(1, b))
    if type(a) is not type(b):
        return False
    if isinstance(a, dict):
        return list(a) == list(b) and all(_same(a[k], b[k]) for k in a)
    if isinstance(a, list):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b, strict=True))
    return bool(a == b)


def _parse(body: bytes) -> Any:
    return ApiResponse(200, httpx.Headers(), body).json()


@settings(max_examples=1500, deadline=None)
@given(json_values, st.booleans())
def test_parses_exactly_as_json_loads(value, ascii_only):
    body = json.dumps(value, ensure_ascii=ascii_only).encode()
    assert _same(_parse(body), json.loads(body))


@settings(max_examples=500, deadline=None)
@given(st.floats(allow_nan=False))
def test_floats_round_trip_like_the_stdlib(value):
    for body in (repr(value).encode(), f"{value:.17e}".encode(), f"[{value!r}]".encode()):
        try:
            expected = json.loads(body)
        except ValueError:
            continue
        assert _same(_parse(body), expected)


@pytest.mark.parametrize("body", [b'{"a":1,"a":2}', b'["\\ud800"]', b'"\\udfff"', b'[NaN,Infinity,-Infinity]',
                                  '{"é":"ü"}'.encode("utf-16"), b"\xef\xbb\xbf[1]"[3:], b"[1e400]", b" [1] "])
def test_odd_bodies_as_the_stdlib(body):
    assert _same(_parse(body), json.loads(body))


@pytest.mark.parametrize("body", [b"", b"{", b"[1,]", b"\xff\xfe\x00", b"nul", b"[1] x"])
def test_bodies_neither_accepts_raise_value_error(body):
    with pytest.raises(ValueError):
        json.loads(body)
    with pytest.raises(ValueError):
        _parse(body)
