"""Each report's list item is rendered when the row is written (migration 0014): rows from
before the migration still list the same bytes, the migration does not rewrite the table,
and a change to a rendered column renders the item again."""

from __future__ import annotations

from typing import Any

import orjson
import psycopg
from psycopg.types.json import Jsonb

import app.storage.migrate as migrate_module
from app.storage import reports as report_store
from app.storage.db import Database
from app.storage.migrate import _migrations, migrate
from tests.factories import small_report, store

TENANT = "acme"
SUMMARY = "0014_report_summary.sql"
TRICKY = [  # texts the rendering must escape, labels of every JSON kind, run_id or none
    {"subject": 'dataset:"quoted"\\back\nline\ttab\u0001', "run_id": "run #1"},
    {"source": "ünïcödé ✓", "subject": "emoji 🚀", "severity": "warn", "status": "warn",
     "labels": {"nested": {"a": [1, 2.5, None, True]}, "empty": ""}},
    {"subject": "plain", "status": "pass", "severity": "info"},
]
# a row as the release before this one wrote it (no summary column yet)
INSERT_BEFORE = """
INSERT INTO reports (tenant_id, id, received_at, observed_at, observed_at_raw, source,
                     subject, run_id, labels, status, severity, count_pass, count_warn,
                     count_fail, content_sha256, canonical)
VALUES (%(tenant)s, gen_random_uuid(), now() + %(n)s * interval '1 ms', '2026-11-21T00:00:00Z',
        '2026-11-21T00:00:00Z',
        %(source)s, %(subject)s, %(run_id)s, %(labels)s, %(status)s, %(severity)s, 1, 0, 0,
        repeat('0', 64), '{}')
"""


async def _page(db: Database) -> bytes:
    read = report_store.list_page_json(tenant=TENANT, params={"page_size": 50},
                                       sort="received_at", descending=True)
    return (await db.read_versioned(TENANT, read))[1].items


def _relfilenode(conn: Any) -> int:
    return conn.execute("SELECT relfilenode FROM pg_class WHERE relname = 'reports'").fetchone()[0]


async def test_rows_from_before_the_summary_list_the_same_bytes_as_rows_after(
        fresh_database, monkeypatch):
    before = [m for m in _migrations() if m[0] < SUMMARY]
    monkeypatch.setattr(migrate_module, "_migrations", lambda: before)
    migrate(fresh_database.owner_url)
    db = await Database(fresh_database.app_url, min_size=1, max_size=2).open(wait=30)
    try:
        with psycopg.connect(fresh_database.owner_url, autocommit=True) as owner:
            for n, fields in enumerate(TRICKY):
                row = {"tenant": TENANT, "n": n, "source": "s", "run_id": None, "labels": {},
                       "status": "fail", "severity": "block", **fields}
                owner.execute(INSERT_BEFORE, {**row, "labels": Jsonb(row["labels"])})
            table = _relfilenode(owner)
            monkeypatch.undo()  # every migration again
            assert migrate(fresh_database.owner_url)[0] == SUMMARY  # then any later ones
            assert _relfilenode(owner) == table  # not rewritten: ingest never waited on it
            assert owner.execute("SELECT count(*) FROM reports WHERE summary IS NULL"
                                 ).fetchone() == (len(TRICKY),)
            rendered_on_read = await _page(db)

            owner.execute("UPDATE reports SET summary = NULL")  # the trigger renders each
            assert owner.execute("SELECT count(*) FROM reports WHERE summary IS NULL"
                                 ).fetchone() == (0,)
            assert await _page(db) == rendered_on_read

        items = orjson.loads(rendered_on_read)
        assert [item["subject"] for item in items] == [r["subject"] for r in reversed(TRICKY)]
        assert items[-1]["run_id"] == "run #1" and "run_id" not in items[0]
        assert items[1]["labels"] == {"nested": {"a": [1, 2.5, None, True]}, "empty": ""}
        assert items[1]["source"] == "ünïcödé ✓"
        assert list(items[0]) == ["id", "tenant", "source", "subject", "observed_at",
                                  "received_at", "labels", "status", "severity", "counts",
                                  "content_sha256", "signed"]
    finally:
        await db.close()


async def test_every_writer_stores_the_summary_and_a_changed_column_renders_it_again(
        migrated_database):
    db = await Database(migrated_database.app_url, min_size=1, max_size=2).open(wait=30)
    render = "qcc_report_summary(reports)"
    try:
        stored = await store(db, TENANT, [small_report(subject="fresh")])
        with psycopg.connect(migrated_database.owner_url, autocommit=True) as owner:
            report_id = stored[0].row.id
            summary, same = owner.execute(f"SELECT summary, summary = {render} FROM reports"
                                          " WHERE id = %s", (report_id,)).fetchone()
            assert same and orjson.loads(summary + "}")["subject"] == "fresh"

            # an insert by hand (an operator's repair) gets it too, whatever it says
            owner.execute("INSERT INTO reports (tenant_id, id, received_at, observed_at,"
                          " observed_at_raw, source, subject, labels, status, severity,"
                          " count_pass, count_warn, count_fail, content_sha256, canonical,"
                          " summary)"
                          " SELECT tenant_id, gen_random_uuid(), received_at, observed_at,"
                          " observed_at_raw, source, 'by hand', labels, status, severity,"
                          " count_pass, count_warn, count_fail, content_sha256, canonical,"
                          " 'forged' FROM reports WHERE id = %s", (report_id,))
            assert owner.execute(f"SELECT summary = {render} FROM reports"
                                 " WHERE subject = 'by hand'").fetchone() == (True,)

            # a rendered column changed: rendered again; signing changes nothing rendered
            owner.execute("UPDATE reports SET received_at = '2001-02-03T04:05:06.000007Z',"
                          " signed = true WHERE id = %s", (report_id,))
        item = orjson.loads(await _page(db))[-1]
        assert item["subject"] == "fresh"
        assert item["received_at"] == "2001-02-03T04:05:06.000007Z"
        assert item["signed"] is True and "signature" not in item  # no signature row yet
    finally:
        await db.close()
