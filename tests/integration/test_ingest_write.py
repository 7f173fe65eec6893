"""A group commit's write (app/services/ingest/service.commit): one tenant's rows are one
statement in autocommit, a transaction by itself; several tenants are one transaction,
all or nothing."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

import psycopg
import pytest

from app.services.ingest import service as ingest
from app.services.ingest.idempotency import Pending, StoredAnswer
from app.services.ingest.submissions import prepare_all
from tests.factories import small_report
from tests.integration.conftest import CountingCursor


def work(tenant: str, *severities: str, pending: Pending | None = None) -> ingest.Work:
    submissions = [small_report(severity=severity, source="w", subject=f"s{n}")
                   for n, severity in enumerate(severities)]
    return ingest.Work(tenant, prepare_all(submissions, tenant=tenant,
                                           batch=len(submissions) > 1), pending)


def stored(owner_url: str, tenant: str) -> tuple[int, int, int]:
    """(reports, the rollup's count, the change version) of `tenant`."""
    with psycopg.connect(owner_url) as conn:
        return conn.execute(
            "SELECT (SELECT count(*) FROM reports WHERE tenant_id = %(t)s),"
            " (SELECT coalesce(sum(n), 0) FROM report_rollup_hourly WHERE tenant_id = %(t)s),"
            " (SELECT coalesce(max(version), 0) FROM tenant_versions WHERE tenant_id = %(t)s)",
            {"t": tenant}).fetchone()


async def test_one_tenant_is_one_statement_that_writes_rows_rollup_key_and_version(
        db, database, owner):
    tenant = f"one-{uuid.uuid4().hex[:8]}"
    key = f"k-{uuid.uuid4().hex[:8]}"
    owner.execute("INSERT INTO idempotency_keys (tenant_id, key, fingerprint, state)"
                  " VALUES (%s, %s, 'f', 'in_flight')",
                  (tenant, key))
    started = datetime.now(UTC)
    works = [work(tenant, "block"), work(tenant, "warn", "block"),
             work(tenant, "info", pending=Pending(key, StoredAnswer(b'{"id":"x"}', "x")))]
    before = CountingCursor.count
    await ingest.commit(db, works, alert_window=300)
    assert CountingCursor.count - before == 1  # the call itself: no BEGIN, no COMMIT
    assert stored(database.owner_url, tenant) == (4, 4, 1)
    hours = {at.replace(minute=0, second=0, microsecond=0)
             for at in (started, datetime.now(UTC))}
    rollup = owner.execute("SELECT hour, severity, n FROM report_rollup_hourly"
                           " WHERE tenant_id = %s ORDER BY severity", (tenant,)).fetchall()
    # the hour of received_at in UTC, as the Python side computed it before
    assert {row[0] for row in rollup} <= hours
    assert [(severity, n) for _, severity, n in rollup] == [("block", 2), ("info", 1),
                                                             ("warn", 1)]
    assert owner.execute("SELECT state, response_status, response_body, location"
                         " FROM idempotency_keys WHERE tenant_id = %s AND key = %s",
                         (tenant, key)).fetchone() == ("done", 201, b'{"id":"x"}', "/reports/x")


async def test_several_tenants_are_one_transaction_all_or_nothing(db, database):
    good, bad = f"good-{uuid.uuid4().hex[:8]}", f"bad-{uuid.uuid4().hex[:8]}"
    first = work(bad, "block")
    await ingest.commit(db, [first], alert_window=300)
    # the same report id again: the second tenant's call fails on its primary key
    again = ingest.Work(bad, [first.reports[0]])
    with pytest.raises(Exception, match="duplicate key"):
        await ingest.commit(db, [work(good, "block", "warn"), again], alert_window=300)
    assert stored(database.owner_url, good) == (0, 0, 0)  # nothing of the good tenant's
    assert stored(database.owner_url, bad) == (1, 1, 1)
    await ingest.commit(db, [work(good, "block"), work(bad, "warn")], alert_window=300)
    assert stored(database.owner_url, good) == (1, 1, 1)
    assert stored(database.owner_url, bad) == (2, 2, 2)
