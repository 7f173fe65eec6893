"""Exports and retention against a database of their own (no worker attached to it)."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import psycopg
import pytest

from app.config import Settings
from app.errors import Conflict, TooManyExports
from app.services import retention
from app.services.access.principal import Principal
from app.services.exports import job as export_job
from app.services.exports import rules as exports
from app.services.exports import views as export_views
from app.services.exports.store import LocalDiskStore
from tests import factories
from tests.factories import small_report

TENANT = "jobs"


@pytest.fixture
def isolated(migrated_db, migrated_database, tmp_path):
    """A fresh, migrated database (tests/integration/conftest.py), a Database on it as the app
    role, settings pointing at it and its owner URL."""
    settings = Settings(data_dir=tmp_path, database_url=migrated_database.app_url)
    return migrated_db, settings, migrated_database.owner_url


async def store(db, count: int, *, received_at: datetime | None = None) -> list[str]:
    submissions = [small_report(source="jobs", subject=f"s{i}") for i in range(count)]
    prepared = await factories.store(db, TENANT, submissions, now=received_at)
    return [p.summary["id"] for p in prepared]


def principal() -> Principal:
    return Principal(tenant=TENANT, role="admin", key_id=uuid.uuid4())


async def test_an_identical_request_returns_the_running_export_and_a_third_is_refused(isolated):
    db, settings, _ = isolated
    who = principal()
    first = await exports.create(db=db, settings=settings, principal=who,
                                 request={"format": "csv", "since": "-1d"})
    again = await exports.create(db=db, settings=settings, principal=who,
                                 request={"format": "csv", "since": "-1d"})
    assert again.export_id == first.export_id
    await exports.create(db=db, settings=settings, principal=who,
                         request={"format": "ndjson", "since": "-1d"})
    with pytest.raises(TooManyExports):
        await exports.create(db=db, settings=settings, principal=who,
                             request={"format": "ndjson", "since": "-2d"})


async def test_an_export_over_the_row_limit_fails_with_the_reason(isolated):
    db, settings, _ = isolated
    await store(db, 3)
    settings = settings.model_copy(update={"export_max_rows": 2})
    accepted = await exports.create(db=db, settings=settings, principal=principal(),
                                    request={"format": "ndjson", "since": "-1h"})
    await export_job.run(db=db, settings=settings, store=LocalDiskStore(settings.exports_path),
                         tenant=TENANT, export_id=accepted.export_id)
    view = await export_views.get(db=db, settings=settings, tenant=TENANT,
                                  export_id=accepted.export_id, if_none_match=None)
    assert view.body["status"] == "failed" and "EXPORT_MAX_ROWS (2)" in view.body["error"]
    assert view.body["download_url"] is None
    assert list((settings.exports_path / TENANT).iterdir()) == []  # no partial file left


async def test_retention_plan_commit_keeps_signed_and_refuses_a_changed_plan(isolated):
    db, settings, owner_url = isolated
    old = datetime.now(UTC) - timedelta(days=100)
    ids = await store(db, 7, received_at=old)
    recent = await store(db, 2)
    with psycopg.connect(owner_url, autocommit=True) as conn:
        conn.execute("UPDATE reports SET signed = true WHERE id = %s", (ids[0],))
    planned = await retention.dry_run(db=db, settings=settings, tenant=TENANT,
                                      older_than_days=90, include_signed=False)
    assert planned.plan["candidates"] == 6 and planned.plan["held_signed"] == 1

    # a report of the plan is signed after the dry run: the commit refuses, deletes nothing
    with psycopg.connect(owner_url, autocommit=True) as conn:
        conn.execute("UPDATE reports SET signed = true WHERE id = %s", (ids[1],))
    with pytest.raises(Conflict, match="plan changed"):
        await retention.commit(db=db, settings=settings, tenant=TENANT,
                               plan_hash=planned.plan_hash)
    with pytest.raises(Conflict, match="unknown or expired"):
        await retention.commit(db=db, settings=settings, tenant=TENANT, plan_hash="0" * 64)

    settings = settings.model_copy(update={"retention_batch": 2})  # several short transactions
    planned = await retention.dry_run(db=db, settings=settings, tenant=TENANT,
                                      older_than_days=90, include_signed=False)
    done = await retention.commit(db=db, settings=settings, tenant=TENANT,
                                  plan_hash=planned.plan_hash)
    assert done.deleted == 5 and done.failures == []
    with psycopg.connect(owner_url) as conn:
        left = {str(r[0]) for r in conn.execute("SELECT id FROM reports WHERE tenant_id = %s",
                                                 (TENANT,))}
        rollup = conn.execute("SELECT coalesce(sum(n), 0) FROM report_rollup_hourly"
                              " WHERE tenant_id = %s", (TENANT,)).fetchone()[0]
        audited = conn.execute("SELECT details->>'deleted' FROM audit_log WHERE tenant_id = %s"
                               " AND action = 'retention.commit'", (TENANT,)).fetchall()
    assert left == {ids[0], ids[1], *recent}  # signed ones kept, recent ones untouched
    assert rollup == 4  # the timeline lost exactly what was deleted
    assert audited == [("5",)]
    with pytest.raises(Conflict):  # a plan is used once
        await retention.commit(db=db, settings=settings, tenant=TENANT,
                               plan_hash=planned.plan_hash)


async def test_times_out_of_range_are_422(isolated):
    from app.errors import Unprocessable

    db, settings, _ = isolated
    for since in ("-808736d", "0001-01-01T00:00:00+01:00"):
        with pytest.raises(Unprocessable):
            await exports.create(db=db, settings=settings, principal=principal(),
                                 request={"format": "csv", "since": since})
