"""What the benchmark sends: a realistic five-check report, batches of them, and the
same batch as prepared rows for the COPY baseline."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any
from uuid import UUID

import uuid_utils
from psycopg.types.json import Jsonb

from app.services.ingest.submissions import prepare, prepare_all
from app.storage.reports import INSERT_COLUMNS

BATCH_SIZE = 500
# The reports columns of a prepared row (app/storage/reports.ReportRow), after tenant_id.
REPORT_COLUMNS = ("tenant_id", *INSERT_COLUMNS)


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


def copy_rows(tenant: str, count: int) -> list[tuple[Any, ...]]:
    """`count` rows exactly as the batch endpoint would store them, each with its own id."""
    prepared = prepare_all(batch_body()["reports"], tenant=tenant, batch=True)
    rows = []
    for n in range(count):
        row = prepared[n % BATCH_SIZE].row
        values = {name: getattr(row, name) for name in INSERT_COLUMNS}
        values.update(id=UUID(bytes=uuid_utils.uuid7().bytes), labels=Jsonb(row.labels))
        rows.append((tenant, *values.values()))
    return rows
