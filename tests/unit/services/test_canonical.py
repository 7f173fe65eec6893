"""The fast canonical path writes exactly what the rfc8785 library writes."""

from __future__ import annotations

import rfc8785
from hypothesis import given, settings
from hypothesis import strategies as st

from app.services.canonical import _orjson_agrees, canonical_bytes

scalars = (st.none() | st.booleans() | st.text()
           | st.integers(min_value=-(2**53 - 1), max_value=2**53 - 1)
           | st.floats(allow_nan=False, allow_infinity=False))
documents = st.recursive(scalars, lambda inner: st.lists(inner, max_size=4)
                         | st.dictionaries(st.text(), inner, max_size=4), max_leaves=30)


@settings(max_examples=2000, deadline=None)
@given(documents)
def test_same_bytes_as_the_library(document):
    assert canonical_bytes(document) == rfc8785.dumps(document)


@settings(max_examples=1000, deadline=None)
@given(st.floats(allow_nan=False, allow_infinity=False))
def test_every_float_agrees(number):
    assert canonical_bytes({"observed": number, "k": [number, -number]}) == \
        rfc8785.dumps({"observed": number, "k": [number, -number]})


def fast(document) -> bool:
    import orjson
    return _orjson_agrees(orjson.dumps(document, option=orjson.OPT_SORT_KEYS))


def test_typical_reports_take_the_fast_path():
    report = {"source": "etl", "labels": {"env": "prod"}, "checks": [
        {"rule": "r", "status": "fail", "severity": "block", "observed": 0.03, "expected": 1000}]}
    assert fast(report)
    assert not fast({"\U0001f600": 1, "\ue000": 2})  # UTF-16 order differs
    assert not fast({"x": 1e20}) and not fast({"x": 2.0}) and not fast(-0.0)
    assert canonical_bytes({"\U0001f600": 1, "\ue000": 2}) == rfc8785.dumps(
        {"\U0001f600": 1, "\ue000": 2})
