"""A worker killed (SIGKILL) in the middle of an export: the job is retried by another
worker and ends succeeded with a correct file — never succeeded with a wrong one."""

from __future__ import annotations

import asyncio
import hashlib
import signal
import time
import uuid
from pathlib import Path

import psycopg
import pytest

from app.config import Settings
from app.services.access.principal import Principal
from app.services.exports import rules as exports
from app.storage.db import Database
from tools.liveserver import LiveDatabase, start_worker

TENANT = "bulk"
ROWS = 150_000

SEED = """
INSERT INTO reports (tenant_id, id, received_at, observed_at, observed_at_raw, source, subject,
                     labels, status, severity, count_pass, count_warn, count_fail,
                     content_sha256, canonical)
SELECT %(tenant)s, md5(i::text)::uuid, now() - (i || ' seconds')::interval, now(),
       '2026-11-21T00:00:00Z', 'bulk', 'subject-' || i, '{"env": "prod"}', 'fail', 'block',
       0, 0, 1, md5(i::text) || md5(i::text),
       convert_to(repeat('{"report":' || i || ',"padding":"' || md5(i::text) || '"}', 4), 'UTF8')
  FROM generate_series(1, %(rows)s) AS i
"""


@pytest.fixture
def crash_site(migrated_database, tmp_path):
    with psycopg.connect(migrated_database.owner_url, autocommit=True) as conn:
        conn.execute(SEED, {"tenant": TENANT, "rows": ROWS})
    return migrated_database, tmp_path


def status(db: LiveDatabase, export_id: uuid.UUID) -> tuple[str, str | None, int | None]:
    with psycopg.connect(db.owner_url) as conn:
        row = conn.execute("SELECT status, sha256, rows FROM exports WHERE id = %s",
                           (export_id,)).fetchone()
    assert row is not None
    return row[0], row[1], row[2]


def test_a_killed_worker_never_leaves_a_wrong_file_marked_done(crash_site):
    db, run_dir = crash_site
    settings = Settings(data_dir=run_dir, database_url=db.app_url)

    async def create() -> uuid.UUID:
        database = await Database(db.app_url, min_size=1, max_size=2).open(wait=30)
        try:
            who = Principal(tenant=TENANT, role="admin", key_id=uuid.uuid4())
            accepted = await exports.create(db=database, settings=settings, principal=who,
                                            request={"format": "ndjson", "since": "-7d"})
            return accepted.export_id
        finally:
            await database.close()

    env = {"WORKER_HEARTBEAT_SECONDS": "1"}
    first = start_worker(db, run_dir=run_dir, env=env, name="first")
    try:
        export_id = asyncio.run(create())
        deadline = time.monotonic() + 30
        while status(db, export_id)[0] == "queued" and time.monotonic() < deadline:
            time.sleep(0.01)
        first.process.send_signal(signal.SIGKILL)
        killed_at = time.monotonic()
        first.process.wait()
    finally:
        first.stop()
    killed_in = status(db, export_id)[0]
    assert killed_in == "running", f"the export was {killed_in} when its worker was killed"

    second = start_worker(db, run_dir=run_dir, env=env, name="second")
    try:
        deadline = time.monotonic() + 90
        while status(db, export_id)[0] == "running" and time.monotonic() < deadline:
            time.sleep(0.2)
        final, sha256, rows = status(db, export_id)
        recovered_in = time.monotonic() - killed_at
    finally:
        second.stop()
    assert final == "succeeded", (final, second.log()[-2000:])
    folder = Path(run_dir) / "exports" / TENANT
    [file] = [p for p in folder.iterdir()]  # no partial file of the killed attempt is left
    assert hashlib.sha256(file.read_bytes()).hexdigest() == sha256
    assert rows == ROWS
    assert "retrying job" in second.log()
    print(f"\nDRILL kill -9 job worker mid-export: status={final}, rows={rows}, "
          f"files_left={len(list(folder.iterdir()))}, recovery_s={recovered_in:.2f}")
