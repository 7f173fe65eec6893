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
import signal
import time
from uuid import UUID

import procrastinate

from app.config import Settings
from app.services import alert_dispatch, exports, retention, system_alerts
from app.storage.db import Database
from app.storage.exports import EXPORT_QUEUE, EXPORT_TASK

log = logging.getLogger("qc_collector.worker")
MAINTENANCE_QUEUE = "maintenance"
EXPORT_ATTEMPTS = 3  # retries after the first attempt
# the job worker's restart backoff after a database failure
RESTART_MIN_SECONDS = 0.5
RESTART_MAX_SECONDS = 15.0
RESTART_RESET_SECONDS = 60.0


def build(settings: Settings, db: Database) -> procrastinate.App:
    assert settings.database_url is not None
    app = procrastinate.App(connector=procrastinate.PsycopgConnector(
        conninfo=settings.database_url, min_size=1, max_size=4))

    @app.task(name=EXPORT_TASK, queue=EXPORT_QUEUE, pass_context=True,
              retry=procrastinate.RetryStrategy(max_attempts=EXPORT_ATTEMPTS, wait=5))
    async def export(context: procrastinate.JobContext, tenant: str, export_id: str) -> None:
        try:
            await exports.run(db=db, settings=settings, tenant=tenant,
                              export_id=UUID(export_id))
        except Exception as exc:
            if context.job.attempts >= EXPORT_ATTEMPTS:  # no retry follows this one
                # the last attempt: the export must not stay "running" and hold a slot
                await exports.give_up(db=db, tenant=tenant, export_id=UUID(export_id),
                                      reason=f"{exc.__class__.__name__} after "
                                             f"{EXPORT_ATTEMPTS + 1} attempts")
            raise

    @app.periodic(cron="0 3 * * *")
    @app.task(name="retention", queue=MAINTENANCE_QUEUE, pass_context=False)
    async def scheduled_retention(timestamp: int) -> None:
        deleted = await retention.scheduled(db=db, settings=settings)
        log.info("scheduled retention deleted %s", deleted or "nothing")

    return app


async def _housekeeping(app: procrastinate.App, db: Database, settings: Settings) -> None:
    silent_for = 3 * settings.worker_heartbeat
    await asyncio.sleep(1.0)  # the job worker opens its connector first
    while True:
        try:
            for job in await app.job_manager.get_stalled_jobs(seconds_since_heartbeat=silent_for):
                log.warning("retrying job %s (%s): its worker stopped", job.id, job.task_name)
                await app.job_manager.retry_job(job)
            expired = await exports.expire_files(db=db, settings=settings)
            if expired:
                log.info("deleted %d expired export file(s)", expired)
        except Exception as exc:  # keep the loop alive; the next round tries again
            log.warning("housekeeping failed: %s", exc.__class__.__name__)
        await asyncio.sleep(settings.worker_heartbeat)


async def run(settings: Settings) -> None:
    """Runs until SIGTERM/SIGINT. A PostgreSQL restart does not end it: procrastinate stops
    its worker when its LISTEN connection breaks, and this loop starts it again (fresh
    connector pool) with backoff, while the dispatcher and checks ride out the outage in
    their own retry loops. In-process rather than exit-and-be-restarted: the supervisor
    (`qc-collector serve`, Kubernetes) would add its own growing delays (CrashLoopBackOff)
    to every database blip, and in-flight alert sends would be cut off."""
    assert settings.database_url is not None
    # + the dispatcher's connections (a round, and recording sends as they finish)
    db = await Database(settings.database_url, min_size=1,
                        max_size=settings.worker_concurrency + 5,
                        timeout=settings.db_pool_timeout).open()
    app = build(settings, db)
    stopping = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stopping.set)
    try:
        # built first: refuses to start in production without ENCRYPTION_KEY
        dispatcher = (alert_dispatch.Dispatcher(db=db, settings=settings)
                      if settings.alert_dispatch else None)
        housekeeping = asyncio.create_task(_housekeeping(app, db, settings))
        alerting = [asyncio.create_task(system_alerts.WorkerChecks(db=db, settings=settings).run())]
        if dispatcher is not None:
            alerting.append(asyncio.create_task(dispatcher.run()))
        try:
            await _run_jobs(app, settings, stopping)
        finally:
            for task in (housekeeping, *alerting):
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
    finally:
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.remove_signal_handler(sig)
        await db.close()


async def _run_jobs(app: procrastinate.App, settings: Settings, stopping: asyncio.Event) -> None:
    delay = RESTART_MIN_SECONDS
    while not stopping.is_set():
        started = time.monotonic()
        try:
            async with app.open_async():
                worker = asyncio.create_task(app.run_worker_async(
                    queues=[EXPORT_QUEUE, MAINTENANCE_QUEUE],
                    concurrency=settings.worker_concurrency,
                    update_heartbeat_interval=settings.worker_heartbeat,
                    # retried jobs are not announced by NOTIFY: poll at the heartbeat's pace
                    fetch_job_polling_interval=min(5.0, settings.worker_heartbeat),
                    stalled_worker_timeout=3 * settings.worker_heartbeat,
                    install_signal_handlers=False))
                stop = asyncio.create_task(stopping.wait())
                await asyncio.wait({worker, stop}, return_when=asyncio.FIRST_COMPLETED)
                stop.cancel()
                if not worker.done():  # asked to stop: running jobs finish first
                    worker.cancel()
                    with contextlib.suppress(asyncio.CancelledError):
                        await worker
                    return
                worker.result()  # raises what stopped it, if anything did
            log.error("the job worker stopped (its database connection broke); restarting")
        except Exception as exc:
            log.error("the job worker failed (%s); restarting", exc.__class__.__name__)
        if time.monotonic() - started > RESTART_RESET_SECONDS:
            delay = RESTART_MIN_SECONDS  # it ran a good while: this is a new incident
        log.info("restarting the job worker in %.1fs", delay)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stopping.wait(), timeout=delay)
        delay = min(delay * 2, RESTART_MAX_SECONDS)
