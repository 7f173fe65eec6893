"""Canonical documents: the fast path writes exactly what the rfc8785 library writes; derived
fields; RFC 3339 times."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import rfc8785
from hypothesis import given, settings
from hypothesis import strategies as st

from app.services import canonical
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


def leaves(document):
    """Every scalar of a document (what a caller passing `scalars` vouches for)."""
    if isinstance(document, dict):
        return [leaf for value in document.values() for leaf in leaves(value)]
    if isinstance(document, list):
        return [leaf for value in document for leaf in leaves(value)]
    return [document]


@settings(max_examples=2000, deadline=None)
@given(documents)
def test_checking_the_scalars_alone_gives_the_same_bytes(document):
    assert canonical_bytes(document, scalars=leaves(document)) == rfc8785.dumps(document)


reports = st.fixed_dictionaries({
    "source": st.text(min_size=1), "labels": st.dictionaries(st.text(), st.text(), max_size=3),
    "counts": st.fixed_dictionaries({k: st.integers(0, 1000) for k in ("pass", "warn", "fail")}),
    "checks": st.lists(st.dictionaries(st.sampled_from(["rule", "observed", "expected"]), scalars),
                       max_size=4)})


@settings(max_examples=2000, deadline=None)
@given(reports, st.booleans())
def test_a_reports_scalars_are_its_counts_labels_and_check_values(report, nested):
    if nested:  # a container among the values (not from the contract): the library decides
        report["checks"].append({"observed": [1.0, {"x": 2e30}]})
    scalars = (*report["counts"].values(), *report["labels"].values(),
               *(v for check in report["checks"] for v in check.values()))
    assert canonical_bytes(report, scalars=scalars) == rfc8785.dumps(report)


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


def test_derive_takes_worst_status_and_highest_non_pass_severity():
    checks = [{"status": "pass", "severity": "block"}, {"status": "warn", "severity": "info"}]
    assert canonical.derive(checks) == ("warn", "info", {"pass": 1, "warn": 1, "fail": 0})
    assert canonical.derive([{"status": "pass", "severity": "block"}])[1] == "info"


def test_canonical_bytes_are_rfc8785():
    # keys sorted by UTF-16 code units, no whitespace, ES6 number form
    assert canonical.canonical_bytes({"b": 1.0, "a": [True, None], "é": "x"}) == \
        b'{"a":[true,null],"b":1,"\xc3\xa9":"x"}'


def test_rfc3339_pads_early_years_and_normalises_to_utc():
    assert canonical.rfc3339(datetime(211, 3, 9, 4, tzinfo=UTC)) == "0211-03-09T04:00:00.000000Z"
    plus_two = datetime(2026, 1, 1, 5, tzinfo=timezone(timedelta(hours=2)))
    assert canonical.rfc3339(plus_two) == "2026-01-01T03:00:00.000000Z"
