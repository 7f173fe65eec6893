"""qc-collector worker: runs jobs from the PostgreSQL-backed queue (procrastinate).

Exports, the daily retention run and housekeeping (expired export files; jobs of workers
that died, found by their stale heartbeat, are retried). Several workers may run at once:
the queue hands each job to one of them. Each worker also runs the alert dispatcher
(ALERT_DISPATCH; several dispatchers never send a notification twice) and the system
alert checks.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any
from uuid import UUID

import procrastinate

from app.config import Settings
from app.services import alert_dispatch, exports, retention, system_alerts
from app.storage.db import open_pool
from app.storage.exports import EXPORT_QUEUE, EXPORT_TASK

log = logging.getLogger("qc_collector.worker")
MAINTENANCE_QUEUE = "maintenance"
EXPORT_ATTEMPTS = 3  # retries after the first attempt


def build(settings: Settings, pool: Any) -> procrastinate.App:
    assert settings.database_url is not None
    # The queue LISTENs for new jobs, which needs a session: behind a transaction-mode
    # pooler, WORKER_DATABASE_URL names a direct connection.
    app = procrastinate.App(connector=procrastinate.PsycopgConnector(
        conninfo=settings.worker_database_url or settings.database_url, min_size=1, max_size=4,
        kwargs={"prepare_threshold": settings.db_prepare_threshold}))

    @app.task(name=EXPORT_TASK, queue=EXPORT_QUEUE, pass_context=True,
              retry=procrastinate.RetryStrategy(max_attempts=EXPORT_ATTEMPTS, wait=5))
    async def export(context: procrastinate.JobContext, tenant: str, export_id: str) -> None:
        try:
            await exports.run(pool=pool, settings=settings, tenant=tenant,
                              export_id=UUID(export_id))
        except Exception as exc:
            if context.job.attempts >= EXPORT_ATTEMPTS:  # no retry follows this one
                # the last attempt: the export must not stay "running" and hold a slot
                await exports.give_up(pool=pool, tenant=tenant, export_id=UUID(export_id),
                                      reason=f"{exc.__class__.__name__} after "
                                             f"{EXPORT_ATTEMPTS + 1} attempts")
            raise

    @app.periodic(cron="0 3 * * *")
    @app.task(name="retention", queue=MAINTENANCE_QUEUE, pass_context=False)
    async def scheduled_retention(timestamp: int) -> None:
        deleted = await retention.scheduled(pool=pool, settings=settings)
        log.info("scheduled retention deleted %s", deleted or "nothing")

    return app


async def _housekeeping(app: procrastinate.App, pool: Any, settings: Settings) -> None:
    silent_for = 3 * settings.worker_heartbeat
    while True:
        try:
            for job in await app.job_manager.get_stalled_jobs(seconds_since_heartbeat=silent_for):
                log.warning("retrying job %s (%s): its worker stopped", job.id, job.task_name)
                await app.job_manager.retry_job(job)
            expired = await exports.expire_files(pool=pool, settings=settings)
            if expired:
                log.info("deleted %d expired export file(s)", expired)
        except Exception as exc:  # keep the loop alive; the next round tries again
            log.warning("housekeeping failed: %s", exc.__class__.__name__)
        await asyncio.sleep(settings.worker_heartbeat)


async def run(settings: Settings) -> None:
    assert settings.database_url is not None
    # + the dispatcher's connections (a round, and recording sends as they finish)
    pool = await open_pool(settings.database_url, min_size=1, max_size=settings.worker_concurrency + 5,
                           prepare_threshold=settings.db_prepare_threshold)
    app = build(settings, pool)
    try:
        # built first: refuses to start in production without ENCRYPTION_KEY
        dispatcher = alert_dispatch.Dispatcher(pool, settings) if settings.alert_dispatch else None
        async with app.open_async():
            housekeeping = asyncio.create_task(_housekeeping(app, pool, settings))
            alerting = [asyncio.create_task(system_alerts.WorkerChecks(pool, settings).run())]
            if dispatcher is not None:
                alerting.append(asyncio.create_task(dispatcher.run()))
            try:
                await app.run_worker_async(
                    queues=[EXPORT_QUEUE, MAINTENANCE_QUEUE],
                    concurrency=settings.worker_concurrency,
                    update_heartbeat_interval=settings.worker_heartbeat,
                    # retried jobs are not announced by NOTIFY: poll at the heartbeat's pace
                    fetch_job_polling_interval=min(5.0, settings.worker_heartbeat),
                    stalled_worker_timeout=3 * settings.worker_heartbeat,
                    install_signal_handlers=True)
            finally:
                for task in (housekeeping, *alerting):
                    task.cancel()
                    with contextlib.suppress(asyncio.CancelledError):
                        await task
    finally:
        await pool.close()
