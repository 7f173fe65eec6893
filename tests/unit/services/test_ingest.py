"""Ingest rules without a database: what `prepare` builds from a submission and which
instants it refuses."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from app.errors import InvalidBody
from app.services import canonical
from app.services.ingest.submissions import prepare, prepare_all
from tests.factories import small_report


def test_prepare_builds_summary_row_and_rollup_key_from_one_canonical_document():
    now = datetime(2026, 11, 21, 2, 3, 4, 567000, tzinfo=UTC)
    submission = small_report(observed_at="2026-11-21T04:00:00+02:00")
    prepared = prepare(submission, tenant="acme", received_at=now)
    assert prepared.summary["received_at"] == "2026-11-21T02:03:04.567000Z"
    assert prepared.summary["observed_at"] == "2026-11-21T04:00:00+02:00"  # as submitted
    assert prepared.summary["labels"] == {}
    assert "run_id" not in prepared.summary
    assert prepared.rollup_key == (now.replace(minute=0, second=0, microsecond=0), "block",
                                   "fail", "s")
    stored_sha = prepared.row.content_sha256
    assert stored_sha == canonical.sha256_hex(prepared.row.canonical) == prepared.summary["content_sha256"]


@pytest.mark.parametrize("observed_at", ["2026-11-21T02:00:00", "not a time", "2026-02-30T00:00:00Z",
                                         "0001-01-01T00:00:00+01:00"])
def test_prepare_all_rejects_impossible_instants(observed_at):
    submission = small_report(observed_at=observed_at, status="pass", severity="info")
    with pytest.raises(InvalidBody) as caught:
        prepare_all([submission], tenant="t", batch=False)
    assert caught.value.extra["errors"][0]["pointer"] == "/observed_at"


def test_offsets_beyond_postgres_range_are_normalised_to_utc():
    submission = small_report(observed_at="2029-03-24T16:24:26+23:23", status="pass", severity="info")
    [prepared] = prepare_all([submission], tenant="t", batch=False)
    assert prepared.row.observed_at == datetime(2029, 3, 23, 17, 1, 26, tzinfo=UTC)
