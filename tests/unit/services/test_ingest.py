"""Ingest rules without a database: what `prepare` builds from a submission and which
instants it refuses."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
import rfc8785

from app.errors import InvalidBody
from app.services import canonical
from app.services.ingest.submissions import prepare, prepare_all
from tests.factories import small_report


def test_prepare_builds_summary_and_row_from_one_canonical_document():
    now = datetime(2026, 11, 21, 2, 3, 4, 567000, tzinfo=UTC)
    submission = small_report(observed_at="2026-11-21T04:00:00+02:00")
    prepared = prepare(submission, tenant="acme", received_at=now)
    assert prepared.summary["received_at"] == "2026-11-21T02:03:04.567000Z"
    assert prepared.summary["observed_at"] == "2026-11-21T04:00:00+02:00"  # as submitted
    assert prepared.summary["labels"] == {}
    assert "run_id" not in prepared.summary
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


@pytest.mark.parametrize("observed", [0.002, 2.0, 1e21, 2**53 - 1, -(10**15), "1e5", None, True])
def test_the_stored_bytes_are_rfc8785_of_the_document_and_the_answer_keeps_its_order(observed):
    submission = small_report(run_id="r1", labels={"env": "prod"})
    submission["checks"][0].update(observed=observed, expected=1.5)
    [prepared] = prepare_all([submission], tenant="acme", batch=True)
    document = {k: v for k, v in prepared.summary.items() if k not in ("content_sha256", "signed")}
    assert prepared.row.canonical == rfc8785.dumps({**document, "checks": submission["checks"]})
    assert list(prepared.summary) == ["source", "subject", "observed_at", "labels", "id", "tenant",
                                      "received_at", "status", "severity", "counts", "run_id",
                                      "content_sha256", "signed"]
