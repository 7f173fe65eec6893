"""The hourly rollups hold exactly what a count over the reports finds, whatever wrote them:
single and batch ingest, an import, retention; and the timeline reads the same counts from
each (the rollup by severity, the wide rollup, the reports)."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime, timedelta
from pathlib import Path

import psycopg
import pytest

from app import importers
from app.config import Settings
from app.services import reports, retention, timeline
from app.services.ingest import imports
from app.services.ingest import service as ingest
from app.storage.migrate import _apply, _migrations, migrate
from tests import factories
from tests.factories import small_report

TENANT = "rollups"
SAMPLES = Path(__file__).resolve().parent.parent / "importers" / "samples"

# each rollup against a GROUP BY over reports, both sides as {(tenant, hour, ...): n}
BY_SEVERITY = ("SELECT tenant_id, hour, severity, n FROM report_rollup_severity_hourly",
               "SELECT tenant_id, date_trunc('hour', received_at), severity, count(*)"
               "  FROM reports GROUP BY 1, 2, 3")
WIDE = ("SELECT tenant_id, hour, severity, status, source, n FROM report_rollup_hourly",
        "SELECT tenant_id, date_trunc('hour', received_at), severity, status, source, count(*)"
        "  FROM reports GROUP BY 1, 2, 3, 4, 5")


def counts(conn: psycopg.Connection, query: str) -> dict[tuple, int]:
    # a count retention took to zero is a zero row in a rollup and no report at all
    return {tuple(row[:-1]): row[-1] for row in conn.execute(query) if row[-1] != 0}


def assert_rollups_match_reports(owner_url: str) -> None:
    with psycopg.connect(owner_url, options="-c TimeZone=UTC") as conn:
        for rollup, over_reports in (BY_SEVERITY, WIDE):
            assert counts(conn, rollup) == counts(conn, over_reports)


def varied(i: int, **fields) -> dict:
    status, severity = (("pass", "info"), ("warn", "warn"), ("fail", "block"))[i % 3]
    return small_report(source=f"src-{i % 2}", subject=f"s{i}", status=status,
                        severity=severity, **fields)


async def test_rollups_follow_single_batch_import_and_retention(migrated_db, migrated_database,
                                                              tmp_path):
    db, owner_url = migrated_db, migrated_database.owner_url
    old = datetime.now(UTC) - timedelta(days=100)
    # single ingests (a batch of one each), in two hours 100 days ago and now
    await factories.store(db, TENANT, *[[varied(i)] for i in range(4)], now=old)
    await factories.store(db, TENANT, *[[varied(i)] for i in range(3)])
    # batches: one in the old hour, one now, one an hour later
    await factories.store(db, TENANT, [varied(i) for i in range(7)], now=old)
    await factories.store(db, TENANT, [varied(i) for i in range(5)])
    await factories.store(db, TENANT, [varied(i) for i in range(6)],
                          now=datetime.now(UTC) + timedelta(hours=1))
    # an import: the batch path from a producer's file
    committer = ingest.committer(db=db)
    committer.start()
    try:
        await imports.import_file(
            db=db, committer=committer, tenant=TENANT, fmt="junit",
            raw=(SAMPLES / "jest" / "junit.xml").read_bytes(),
            options=importers.Options(source="jest", observed_at=datetime.now(UTC)),
            idempotency_key=None, idempotency_ttl=timedelta(hours=1))
    finally:
        await committer.stop()
    assert_rollups_match_reports(owner_url)

    settings = Settings(data_dir=tmp_path, database_url=migrated_database.app_url,
                        retention_batch=3)  # several short transactions
    planned = await retention.dry_run(db=db, settings=settings, tenant=TENANT,
                                      older_than_days=90, include_signed=False)
    done = await retention.commit(db=db, settings=settings, tenant=TENANT,
                                  plan_hash=planned.plan_hash)
    assert done.deleted == 11
    assert_rollups_match_reports(owner_url)


async def test_the_timeline_reads_the_same_counts_from_each_source(migrated_db):
    now = datetime.now(UTC)
    for hours_ago in (30, 5, 0):
        await factories.store(migrated_db, TENANT, [varied(i) for i in range(hours_ago % 7 + 3)],
                              now=now - timedelta(hours=hours_ago))

    async def document(bucket: str, **filters) -> bytes:
        made = await timeline.get_timeline(
            db=migrated_db, tenant=TENANT, bucket=bucket, group_by="severity",
            filters=reports.make_filters(**filters), if_none_match=None,
            now=now + timedelta(minutes=1))
        assert made.document is not None
        return made.document

    for bucket in ("hour", "day"):
        narrow = await document(bucket)  # the rollup by severity
        wide = await document(bucket, status=["pass", "warn", "fail"])  # the wide rollup
        scanned = await document(bucket, subject=[f"s{i}" for i in range(10)])  # reports
        assert narrow == wide == scanned
        assert b'"total":0' in narrow and b'"block"' in narrow
    one = await document("hour", severity=["block"])
    assert one == await document("hour", severity=["block"], source=["src-0", "src-1"])


def test_the_rollup_by_severity_follows_every_change_of_the_wide_one(migrated_database):
    """Whoever writes report_rollup_hourly (an operator's repair included) moves the rollup
    by severity with it: inserts, upserts, a key changed, deletes, a truncate."""
    hour = datetime(2026, 1, 1, tzinfo=UTC)
    with psycopg.connect(migrated_database.owner_url, autocommit=True) as conn:
        def check() -> None:
            assert counts(conn, BY_SEVERITY[0]) == counts(conn, """
                SELECT tenant_id, hour, severity, sum(n) FROM report_rollup_hourly
                 GROUP BY 1, 2, 3""")

        conn.execute("""
            INSERT INTO report_rollup_hourly (tenant_id, hour, severity, status, source, n)
            VALUES ('a', %(h)s, 'block', 'fail', 's1', 2), ('a', %(h)s, 'block', 'fail', 's2', 3),
                   ('a', %(h)s, 'info', 'pass', 's1', 5), ('b', %(h)s, 'block', 'fail', 's1', 7)
            """, {"h": hour})
        check()
        conn.execute("""
            INSERT INTO report_rollup_hourly (tenant_id, hour, severity, status, source, n)
            VALUES ('a', %(h)s, 'block', 'fail', 's1', 4), ('a', %(h)s, 'warn', 'warn', 's1', 1)
            ON CONFLICT (tenant_id, hour, severity, status, source)
            DO UPDATE SET n = report_rollup_hourly.n + EXCLUDED.n""", {"h": hour})
        check()
        conn.execute("UPDATE report_rollup_hourly SET severity = 'warn', hour = hour + interval"
                     " '1 hour' WHERE tenant_id = 'a' AND source = 's2'")
        conn.execute("UPDATE report_rollup_hourly SET n = n - 1 WHERE tenant_id = 'b'")
        check()
        conn.execute("DELETE FROM report_rollup_hourly WHERE severity = 'info'")
        check()
        conn.execute("TRUNCATE report_rollup_hourly")
        assert conn.execute("SELECT count(*) FROM report_rollup_severity_hourly").fetchone() == (0,)


def test_the_migration_fills_the_rollup_by_severity_from_the_wide_one(fresh_database):
    earlier = [(name, sql) for name, sql in _migrations() if name < "0012"]
    hour = datetime(2026, 1, 1, tzinfo=UTC)
    with psycopg.connect(fresh_database.owner_url, autocommit=True) as conn:
        conn.execute("CREATE TABLE schema_migrations (name text PRIMARY KEY,"
                     " sha256 text NOT NULL, applied_at timestamptz NOT NULL DEFAULT now())")
        for name, sql in earlier:
            _apply(conn, name, sql, hashlib.sha256(sql.encode()).hexdigest(), 1)
        conn.execute("""
            INSERT INTO report_rollup_hourly (tenant_id, hour, severity, status, source, n)
            SELECT 't' || (i %% 2), %(h)s + (i %% 5) * interval '1 hour',
                   (ARRAY['info', 'warn', 'block'])[1 + i %% 3], 'pass', 's' || i, i
              FROM generate_series(1, 60) AS i""", {"h": hour})
    assert any(name.startswith("0012") for name in migrate(fresh_database.owner_url))
    with psycopg.connect(fresh_database.owner_url) as conn:
        filled = counts(conn, BY_SEVERITY[0])
        assert filled == counts(conn, "SELECT tenant_id, hour, severity, sum(n)"
                                      " FROM report_rollup_hourly GROUP BY 1, 2, 3")
        assert sum(filled.values()) == sum(range(1, 61))


def test_the_rollup_by_severity_is_tenant_scoped(migrated_database):
    """The trigger writes as the writer of the wide rollup: RLS applies to it as to them."""
    with psycopg.connect(migrated_database.app_url) as conn:
        with conn.transaction():
            conn.execute("SELECT set_config('app.tenant', 'rls-a', true)")
            conn.execute("INSERT INTO report_rollup_hourly VALUES"
                         " ('rls-a', '2026-01-01T00:00Z', 'info', 'pass', 's', 1)")
        with conn.transaction():
            conn.execute("SELECT set_config('app.tenant', 'rls-b', true)")
            assert conn.execute("SELECT count(*) FROM report_rollup_severity_hourly"
                                ).fetchone() == (0,)
            with pytest.raises(psycopg.errors.InsufficientPrivilege):
                conn.execute("INSERT INTO report_rollup_severity_hourly"
                             " VALUES ('rls-a', now(), 'info', 1)")
        with conn.transaction():
            conn.execute("SELECT set_config('app.tenant', 'rls-a', true)")
            assert conn.execute("SELECT n FROM report_rollup_severity_hourly").fetchall() == [(1,)]
