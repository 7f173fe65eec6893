"""The canonical report (RFC 8785) and the server-derived fields it carries."""

from __future__ import annotations

import hashlib
import re
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
# the rfc8785 library writes the bytes instead. tests/unit/test_canonical.py proves the
# two agree. One regex search (in C) finds such a number token: an exponent, an integral
# float (…".0"), or 16+ characters. (Strings may match too: harmless, the slow path is
# then taken for nothing.)
_DIFFERING_NUMBER = re.compile(
    rb"[:\[,](?:-?[0-9][0-9.+\-]*[eE]"  # an exponent
    rb"|-?[0-9][0-9.eE+\-]*\.0(?![0-9.eE+\-])"  # an integral float
    rb"|(?=-?[0-9])[0-9.eE+\-]{16,})")  # large integers and long fractions
_OUTSIDE_BMP = (b"\xf0", b"\xf1", b"\xf2", b"\xf3", b"\xf4")  # lead bytes of 4-byte UTF-8


def _orjson_agrees(data: bytes) -> bool:
    if data[:1] in b"-0123456789" or any(lead in data for lead in _OUTSIDE_BMP):
        return False  # a bare number, or UTF-16 key order may differ
    return _DIFFERING_NUMBER.search(data) is None


def canonical_bytes(document: Any) -> bytes:
    """RFC 8785 (JSON Canonicalization Scheme) bytes of a JSON value."""
    data = orjson.dumps(document, option=orjson.OPT_SORT_KEYS)
    return data if _orjson_agrees(data) else rfc8785.dumps(document)


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()
