"""The canonical report (RFC 8785) and the server-derived fields it carries."""

from __future__ import annotations

import hashlib
from datetime import datetime
from typing import Any

import rfc8785

STATUS_RANK = {"pass": 0, "warn": 1, "fail": 2}
SEVERITY_RANK = {"info": 0, "warn": 1, "block": 2}


def rfc3339(moment: datetime) -> str:
    """Server timestamps: UTC, microseconds, 'Z' — the form stored and signed."""
    return moment.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


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


def canonical_bytes(document: dict[str, Any]) -> bytes:
    return rfc8785.dumps(document)


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()
