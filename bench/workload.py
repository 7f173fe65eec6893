"""What the benchmark sends: a realistic five-check report, batches of them, and the
same batch as prepared rows for the COPY baseline."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any
from uuid import UUID

import psycopg
import uuid_utils
from psycopg.types.json import Jsonb

from app.services.ingest.submissions import prepare, prepare_all
from app.storage.reports import INSERT_COLUMNS

BATCH_SIZE = 500
# The reports columns of a prepared row (app/storage/reports.ReportRow), after tenant_id.
REPORT_COLUMNS = ("tenant_id", *INSERT_COLUMNS, "summary")
SUMMARY_COLUMNS = ("id", "source", "subject", "observed_at_raw", "received_at", "labels",
                   "status", "severity", "count_pass", "count_warn", "count_fail",
                   "content_sha256")
SUMMARY = ("SELECT qcc_report_summary(%(id)s, %(tenant)s, %(source)s, %(subject)s,"
           " %(observed_at_raw)s, %(received_at)s, %(labels)s, %(status)s, %(severity)s,"
           " %(count_pass)s, %(count_warn)s, %(count_fail)s, %(content_sha256)s)")


def report_body(n: int = 0) -> dict[str, Any]:
    """One submission as a producer would send it (like tests/conftest.py, five checks)."""
    return {
        "source": "etl-nightly",
        "subject": f"dataset:orders_{n % 500}",
        "run_id": f"2026-11-21T02:00Z#{n}",
        "observed_at": "2026-11-21T02:03:11Z",
        "labels": {"env": "prod", "team": "billing"},
        "checks": [
            {"rule": "row_count_min", "status": "fail", "severity": "block",
             "message": "0 rows, expected >= 1000", "observed": 0, "expected": ">= 1000"},
            {"rule": "null_ratio", "status": "pass", "severity": "warn",
             "observed": 0.002, "expected": "<= 0.01"},
            {"rule": "unique_key", "status": "pass", "severity": "block",
             "observed": 0, "expected": 0},
            {"rule": "freshness_hours", "status": "warn", "severity": "warn",
             "message": "last load 26 h ago", "observed": 26, "expected": "<= 24"},
            {"rule": "schema_drift", "status": "pass", "severity": "info"},
        ],
    }


def batch_body() -> dict[str, Any]:
    return {"reports": [report_body(n) for n in range(BATCH_SIZE)]}


def canonical_size() -> int:
    """Length of the canonical bytes the app stores for report_body(): the seed pads to it."""
    prepared = prepare(report_body(), tenant="acme", received_at=datetime.now(UTC))
    return len(prepared.row.canonical)


def copy_rows(conninfo: str, tenant: str, count: int) -> list[tuple[Any, ...]]:
    """`count` rows exactly as the batch endpoint would store them, each with its own id,
    the list item's summary included (rendered by PostgreSQL's own function once per
    prepared report, before anything is timed; only the id differs between copies)."""
    prepared = prepare_all(batch_body()["reports"], tenant=tenant, batch=True)
    with psycopg.connect(conninfo) as conn:
        summaries = [conn.execute(SUMMARY, {
            "tenant": tenant, **{name: getattr(p.row, name) for name in SUMMARY_COLUMNS},
            "labels": Jsonb(p.row.labels)}).fetchone()[0] for p in prepared]
    rows = []
    for n in range(count):
        row = prepared[n % BATCH_SIZE].row
        values = {name: getattr(row, name) for name in INSERT_COLUMNS}
        values.update(id=UUID(bytes=uuid_utils.uuid7().bytes), labels=Jsonb(row.labels))
        summary = summaries[n % BATCH_SIZE].replace(str(row.id), str(values["id"]), 1)
        rows.append((tenant, *values.values(), summary))
    return rows
