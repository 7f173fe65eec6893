"""A retention commit rests between its batches (RETENTION_PAUSE times each batch's own
time), so ingestion keeps most of the machine; at 0 it runs flat out. Both delete all."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta

from app.config import Settings
from app.services import retention
from tests import factories
from tests.factories import small_report


async def commit_timed(db, tmp_path, tenant: str, pause: float) -> tuple[int, float]:
    old = datetime.now(UTC) - timedelta(days=100)
    await factories.store(db, tenant, [small_report(subject=f"s{i}") for i in range(12)],
                          now=old)
    settings = Settings(data_dir=tmp_path, retention_batch=3, retention_pause=pause)
    planned = await retention.dry_run(db=db, settings=settings, tenant=tenant,
                                      older_than_days=90, include_signed=False)
    started = time.monotonic()
    done = await retention.commit(db=db, settings=settings, tenant=tenant,
                                  plan_hash=planned.plan_hash)
    return done.deleted, time.monotonic() - started


async def test_a_commit_rests_between_batches_and_deletes_all(migrated_db, tmp_path):
    # 12 candidates in batches of 3: four full batches, then an empty one ends the run, so
    # four rests of (pause x that batch's time)
    flat_deleted, flat = await commit_timed(migrated_db, tmp_path, "pace-flat", 0.0)
    paced_deleted, paced = await commit_timed(migrated_db, tmp_path, "pace-rested", 100.0)
    assert flat_deleted == paced_deleted == 12
    # the rests alone are 100x the four batches' time (at least a round trip each), which
    # is about all the flat run spends
    assert paced > 0.2 and paced > 2 * flat, (flat, paced)
