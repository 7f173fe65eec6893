"""The canonical report (RFC 8785) and the server-derived fields it carries."""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any

import orjson
import rfc8785

STATUS_RANK = {"pass": 0, "warn": 1, "fail": 2}
SEVERITY_RANK = {"info": 0, "warn": 1, "block": 2}


def rfc3339(moment: datetime) -> str:
    """Server timestamps: UTC, microseconds, 'Z' — the form stored and signed. (Not
    strftime: glibc writes year 211 as "211", which is not RFC 3339.)"""
    utc = moment.astimezone(UTC) if moment.tzinfo else moment
    return utc.replace(tzinfo=None).isoformat(timespec="microseconds") + "Z"


def derive(checks: list[dict[str, Any]]) -> tuple[str, str, dict[str, int]]:
    """(status, severity, counts): worst status; highest severity among non-pass checks."""
    counts = {"pass": 0, "warn": 0, "fail": 0}
    severity_rank = 0
    for check in checks:
        status = check["status"]
        counts[status] += 1
        if status != "pass":
            severity_rank = max(severity_rank, SEVERITY_RANK[check["severity"]])
    status = "fail" if counts["fail"] else "warn" if counts["warn"] else "pass"
    severity = ("info", "warn", "block")[severity_rank]
    return status, severity, counts


# orjson with sorted keys writes exactly the RFC 8785 bytes for most JSON, at a tenth of
# the library's cost. Where the two may differ — a character outside the BMP (UTF-16 key
# order), an exponent, an integral float, 16+ digit numbers — orjson's output shows it and
# the rfc8785 library writes the bytes instead. tests/unit/services/test_canonical.py proves the
# two agree. One regex search (in C) finds such a number token: an exponent, an integral
# float (…".0"), or 16+ characters. (Strings may match too: harmless, the slow path is
# then taken for nothing.)
_DIFFERING_NUMBER = re.compile(
    rb"[:\[,](?:-?[0-9][0-9.+\-]*[eE]"  # an exponent
    rb"|-?[0-9][0-9.eE+\-]*\.0(?![0-9.eE+\-])"  # an integral float
    rb"|(?=-?[0-9])[0-9.eE+\-]{16,})")  # large integers and long fractions
_OUTSIDE_BMP = (b"\xf0", b"\xf1", b"\xf2", b"\xf3", b"\xf4")  # lead bytes of 4-byte UTF-8


def _orjson_agrees(data: bytes) -> bool:
    return _text_agrees(data) and _DIFFERING_NUMBER.search(data) is None


def _text_agrees(data: bytes) -> bool:
    if data[:1] in b"-0123456789":
        return False  # a bare number
    # ASCII (in C, ~0.1 µs) has no character outside the BMP: UTF-16 key order may differ
    return data.isascii() or not any(lead in data for lead in _OUTSIDE_BMP)


# Integers this short print the same in both (≤ 15 characters with the sign: the regex's
# 16-character rule never applies to them).
_SHORT_INT = range(-(10**14) + 1, 10**15)


def _value_agrees(value: Any) -> bool:
    """The regex's verdict on one value's own token; a string, bool or None has no number
    token, a container is not checked here (False: the caller's document takes the
    library's path)."""
    kind = type(value)
    if kind is str or value is None or kind is bool or (kind is int and value in _SHORT_INT):
        return True
    if kind is int or kind is float:
        return _DIFFERING_NUMBER.search(b":" + orjson.dumps(value)) is None
    return False


def canonical_bytes(document: Any, *, scalars: Iterable[Any] | None = None) -> bytes:
    """RFC 8785 (JSON Canonicalization Scheme) bytes of a JSON value.

    `scalars`: when the caller knows where the document may hold numbers (a report: its
    counts and the values of its checks and labels; everything else is a string), those
    values, checked one by one — instead of the regex over the whole output, which costs
    ~12 µs for a five-check report (the ingest's largest share before). A container among
    them, or a number the regex would flag, sends the document to the library."""
    data = orjson.dumps(document, option=orjson.OPT_SORT_KEYS)
    if scalars is None:
        agrees = _orjson_agrees(data)
    else:
        agrees = _text_agrees(data) and all(map(_value_agrees, scalars))
    return data if agrees else rfc8785.dumps(document)


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()
