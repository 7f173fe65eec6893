"""Submission rules: what the JSON Schema cannot say, and the server's fields of a report.

A submission is checked (a real instant, label keys), given its id, received time,
derived status/severity/counts and canonical bytes, and becomes a PreparedReport: the
stored row (app/storage/reports.ReportRow), the summary the answer shows, and its key in
the hourly rollup.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from uuid import UUID

import uuid_utils

from app.errors import InvalidBody
from app.services.canonical import canonical_bytes, derive, rfc3339, sha256_hex
from app.storage.reports import ReportRow

LABEL_KEY_MAX = 64


@dataclass(slots=True)
class PreparedReport:
    row: ReportRow
    summary: dict[str, Any]


def _parse_time(raw: str) -> datetime | None:
    """The instant in UTC (PostgreSQL refuses offsets beyond 15:59 that RFC 3339 allows)."""
    try:
        moment = datetime.fromisoformat(raw)
        return moment.astimezone(UTC) if moment.tzinfo is not None else None
    except (ValueError, OverflowError):  # not a date-time, or out of range once in UTC
        return None


def _check(submission: dict[str, Any], pointer: str, observed_at: datetime | None
           ) -> list[dict[str, str]]:
    """What the JSON Schema cannot say: a real instant, label key length, no NUL keys."""
    errors = []
    if observed_at is None:
        errors.append({"pointer": f"{pointer}/observed_at",
                       "detail": "not an RFC 3339 date-time with an offset, or out of range"})
    for key in submission.get("labels", {}):
        if not key or len(key) > LABEL_KEY_MAX or "\x00" in key:
            errors.append({"pointer": f"{pointer}/labels",
                           "detail": f"label keys must be 1-{LABEL_KEY_MAX} characters without NUL"})
    return errors


def prepare(submission: dict[str, Any], *, tenant: str, received_at: datetime,
            received: str | None = None, observed_at: datetime | None = None) -> PreparedReport:
    """`received` (received_at in RFC 3339) and `observed_at` (parsed) when the caller has
    them already: a batch shares one received time."""
    report_id = UUID(bytes=uuid_utils.uuid7().bytes)
    checks = submission["checks"]
    status, severity, counts = derive(checks)
    labels = submission.get("labels", {})
    # The answer's fields in the answer's order; the stored document adds the checks.
    summary: dict[str, Any] = {
        "source": submission["source"],
        "subject": submission["subject"],
        "observed_at": submission["observed_at"],
        "labels": labels,
        "id": str(report_id),
        "tenant": tenant,
        "received_at": received or rfc3339(received_at),
        "status": status,
        "severity": severity,
        "counts": counts,
    }
    run_id = submission.get("run_id")
    if run_id is not None:
        summary["run_id"] = run_id
    # Numbers can only be among the checks' and labels' values (the counts are small
    # integers, the other fields strings): only those are checked for where orjson and
    # RFC 8785 may differ.
    scalars = [v for check in checks for v in check.values() if type(v) is not str]
    scalars += [v for v in labels.values() if type(v) is not str]
    canonical = canonical_bytes({**summary, "checks": checks}, scalars=scalars)
    digest = sha256_hex(canonical)
    summary["content_sha256"] = digest
    summary["signed"] = False
    row = ReportRow(
        id=report_id, received_at=received_at,
        observed_at=observed_at or _parse_time(submission["observed_at"]),
        observed_at_raw=submission["observed_at"], source=submission["source"],
        subject=submission["subject"], run_id=run_id, labels=labels, status=status,
        severity=severity, count_pass=counts["pass"], count_warn=counts["warn"],
        count_fail=counts["fail"], content_sha256=digest, canonical=canonical)
    return PreparedReport(row=row, summary=summary)


def prepare_all(submissions: list[dict[str, Any]], *, tenant: str, batch: bool,
                now: datetime | None = None) -> list[PreparedReport]:
    """All or nothing: any invalid submission raises InvalidBody naming each one."""
    errors: list[dict[str, str]] = []
    bad: list[int] = []
    observed = [_parse_time(s["observed_at"]) for s in submissions]
    for index, submission in enumerate(submissions):
        found = _check(submission, f"/reports/{index}" if batch else "", observed[index])
        if found:
            errors.extend(found)
            bad.append(index)
    if errors:
        raise InvalidBody(errors, bad if batch else None)
    received_at = now or datetime.now(UTC)
    received = rfc3339(received_at)
    return [prepare(s, tenant=tenant, received_at=received_at, received=received, observed_at=t)
            for s, t in zip(submissions, observed, strict=True)]
