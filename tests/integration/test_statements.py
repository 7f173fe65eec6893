"""No N+1: a read costs the same number of round trips whatever the page size — one, for a
versioned read (the scope, the version and the read in one simple query)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from uuid import UUID

import orjson

from app.services import reports, timeline
from tests.factories import small_report, store
from tests.integration.conftest import CountingCursor

TENANT = "stmt-count"


def submission(i: int) -> dict:
    return small_report(source=f"src-{i % 3}", subject=f"s{i}", labels={"env": "prod"},
                        status=("pass", "warn", "fail")[i % 3])


async def _statements(coro) -> tuple[int, object]:
    before = CountingCursor.count
    result = await coro
    return CountingCursor.count - before, result


async def test_statement_counts_do_not_grow_with_page_size(db):
    await store(db, TENANT, [submission(i) for i in range(600)])

    counts = {}
    for limit in (1, 50, 500):
        n, page = await _statements(reports.list_reports(
            db=db, tenant=TENANT, filters=reports.Filters(), sort="-received_at",
            limit=limit, cursor=None, if_none_match=None))
        assert len(orjson.loads(page.items)) == limit
        counts[limit] = n
    assert set(counts.values()) == {1}, counts  # the scope, the version and the page at once

    # a matching If-None-Match is the same one round trip (the memory of app/conditional.py
    # answers a repeated one before the service is reached)
    n, unchanged = await _statements(reports.list_reports(
        db=db, tenant=TENANT, filters=reports.Filters(), sort="-received_at", limit=500,
        cursor=None, if_none_match=page.etag))
    assert unchanged.items is None and n == 1

    report_id = UUID(orjson.loads(page.items)[0]["id"])
    n, _ = await _statements(reports.get_report(db=db, tenant=TENANT, report_id=report_id,
                                                if_none_match=None))
    assert n == 1
    now = datetime.now(UTC)
    for filters in (reports.Filters(), reports.make_filters(label=["env:prod"])):
        n, result = await _statements(timeline.get_timeline(
            db=db, tenant=TENANT, bucket="hour", group_by="status", filters=filters,
            if_none_match=None, now=now + timedelta(hours=1)))
        assert n == 1
        assert sum(b["total"] for b in orjson.loads(result.document)["buckets"]) == 600
