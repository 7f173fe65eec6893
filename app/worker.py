"""qc-collector worker: runs jobs from the PostgreSQL-backed queue (procrastinate), the
one job system of the service. Several workers may run at once: the queue hands each job
to one of them, periodic jobs are deferred once per tick whichever workers run.

Queues and tasks:
- exports: `export` (RetryStrategy; the last failure marks the export failed);
- maintenance (periodic): `retention` (daily), `housekeeping` (every heartbeat: jobs of
  workers that died, found by their stale heartbeat, are retried; expired export files
  are deleted), `prune` (hourly: the alert delivery log, expired idempotency records,
  finished alert jobs), `system_checks` (every SYSTEM_ALERT_INTERVAL);
- alerts, only with ALERT_DISPATCH (a worker without it does not listen on the queue):
  `alerts.announce` (periodic, every second), `alerts.deliver` (one job per delivery,
  with DeliveryRetry).
Beside the queue, each worker watches that it can reach the database
(system_alerts.DatabaseWatch): that alert cannot go through the queue.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import time
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import UUID

import procrastinate
from procrastinate.jobs import Job
from procrastinate.retry import RetryDecision

from app.config import Settings
from app.services import retention
from app.services.alerts import channels, delivery
from app.services.exports import job as export_job
from app.services.exports import store as export_files
from app.services.ingest import idempotency
from app.services.ops import system_alerts
from app.storage.alerts import ALERT_QUEUE, DELIVER_TASK
from app.storage.db import Database
from app.storage.exports import EXPORT_QUEUE, EXPORT_TASK

log = logging.getLogger("qc_collector.worker")
MAINTENANCE_QUEUE = "maintenance"
EXPORT_ATTEMPTS = 3  # retries after the first attempt
ALERT_CONCURRENCY = 16  # sends at once per worker: a slow receiver never holds up the rest
UNEXPECTED_RETRIES = 10  # a delivery job that failed for another reason (database gone)
KEEP_JOBS_HOURS = 1
ANNOUNCE_TASK = "alerts.announce"
ROUTINE_TASKS = frozenset({ANNOUNCE_TASK, "housekeeping", "system_checks"})
# the job worker's restart backoff after a database failure
RESTART_MIN_SECONDS = 0.5
RESTART_MAX_SECONDS = 15.0
RESTART_RESET_SECONDS = 60.0


def _not_routine(record: logging.LogRecord) -> bool:
    """Keeps the log readable: the start/success lines (and periodic deferrals) of the
    jobs that tick every second or heartbeat are dropped; their warnings and errors and
    what they log themselves are kept."""
    job = getattr(record, "job", None)
    task = job.get("task_name") if isinstance(job, dict) else getattr(record, "task_name", None)
    if record.exc_info and isinstance(record.exc_info[1], delivery.DeliveryFailed):
        record.exc_info = None  # an expected failure, already logged with its reason
    return not (record.levelno <= logging.INFO and task in ROUTINE_TASKS)


def every(seconds: float) -> str:
    """A cron (with procrastinate's seconds field) ticking about every `seconds`, on a
    period that divides the minute or the hour, so the ticks are evenly spaced."""
    if seconds < 60:
        step = max(n for n in (1, 2, 3, 4, 5, 6, 10, 12, 15, 20, 30) if n <= max(seconds, 1))
        return f"* * * * * */{step}"
    if seconds < 3600:
        step = max(n for n in (1, 2, 3, 4, 5, 6, 10, 12, 15, 20, 30) if n <= seconds / 60)
        return f"*/{step} * * * * 0"
    return "0 * * * * 0"


class DeliveryRetry(procrastinate.BaseRetryStrategy):
    """A failed attempt (DeliveryFailed) runs again after the delay it recorded: the
    exponential, jittered backoff, at least the receiver's Retry-After (429/503); the
    service decides when a channel gives up. Anything else (the database went away
    mid-delivery) is retried with the same backoff a bounded number of times."""

    def __init__(self, settings: Settings) -> None:
        self.base = settings.alert_retry_base_seconds
        self.cap = settings.alert_retry_max_seconds

    def get_retry_decision(self, *, exception: BaseException, job: Job) -> RetryDecision | None:
        if isinstance(exception, delivery.DeliveryFailed):
            delay = exception.delay
        elif job.attempts < UNEXPECTED_RETRIES:
            delay = channels.backoff(job.attempts + 1, base=self.base, cap=self.cap)
        else:
            return None
        return RetryDecision(retry_at=datetime.now(UTC) + timedelta(seconds=delay))


def build(settings: Settings, db: Database, http: Any = None) -> procrastinate.App:
    """The queue's tasks. `http`: the alert channels' HTTP client (the worker's own)."""
    assert settings.database_url is not None
    # The queue LISTENs for new jobs, which needs a session: behind a transaction-mode
    # pooler, WORKER_DATABASE_URL names a direct connection.
    files = export_files.configured(settings)
    app = procrastinate.App(connector=procrastinate.PsycopgConnector(
        conninfo=settings.worker_database_url or settings.database_url, min_size=1, max_size=4,
        kwargs={"prepare_threshold": settings.db_prepare_threshold}))

    @app.task(name=EXPORT_TASK, queue=EXPORT_QUEUE, pass_context=True,
              retry=procrastinate.RetryStrategy(max_attempts=EXPORT_ATTEMPTS, wait=5))
    async def export(context: procrastinate.JobContext, tenant: str, export_id: str) -> None:
        try:
            await export_job.run(db=db, settings=settings, store=files, tenant=tenant,
                                 export_id=UUID(export_id))
        except Exception as exc:
            if context.job.attempts >= EXPORT_ATTEMPTS:  # no retry follows this one
                # the last attempt: the export must not stay "running" and hold a slot
                await export_job.give_up(db=db, tenant=tenant, export_id=UUID(export_id),
                                         reason=f"{exc.__class__.__name__} after "
                                                f"{EXPORT_ATTEMPTS + 1} attempts")
            raise

    @app.periodic(cron="0 3 * * *")
    @app.task(name="retention", queue=MAINTENANCE_QUEUE, pass_context=False)
    async def scheduled_retention(timestamp: int) -> None:
        deleted = await retention.scheduled(db=db, settings=settings)
        log.info("scheduled retention deleted %s", deleted or "nothing")

    @app.periodic(cron=every(settings.worker_heartbeat))
    @app.task(name="housekeeping", queue=MAINTENANCE_QUEUE, queueing_lock="housekeeping")
    async def housekeeping(timestamp: int) -> None:
        silent_for = 3 * settings.worker_heartbeat
        for job in await app.job_manager.get_stalled_jobs(seconds_since_heartbeat=silent_for):
            log.warning("retrying job %s (%s): its worker stopped", job.id, job.task_name)
            await app.job_manager.retry_job(job)
        expired = await export_job.expire_files(db=db, settings=settings, store=files)
        if expired:
            log.info("deleted %d expired export file(s)", expired)

    @app.periodic(cron="17 * * * *")
    @app.task(name="prune", queue=MAINTENANCE_QUEUE, queueing_lock="prune")
    async def prune(timestamp: int) -> None:
        await delivery.prune(db=db)
        gone = await idempotency.prune(
            db=db, older_than=datetime.now(UTC) - timedelta(hours=settings.idempotency_ttl_hours))
        if gone:
            log.info("pruned %d expired idempotency records", gone)
        # periodic jobs tick every second or heartbeat: keep an hour of the finished ones
        for queue in (ALERT_QUEUE, MAINTENANCE_QUEUE):
            await app.job_manager.delete_old_jobs(nb_hours=KEEP_JOBS_HOURS, queue=queue)

    @app.periodic(cron=every(settings.system_alert_interval))
    @app.task(name="system_checks", queue=MAINTENANCE_QUEUE, queueing_lock="system_checks")
    async def system_checks(timestamp: int) -> None:
        since = datetime.fromtimestamp(timestamp - settings.system_alert_interval, UTC)
        await system_alerts.check(db=db, settings=settings, since=since)

    @app.task(name=DELIVER_TASK, queue=ALERT_QUEUE, retry=DeliveryRetry(settings),
              pass_context=True)
    async def deliver(context: procrastinate.JobContext, tenant: str, delivery_id: str) -> None:
        assert http is not None, "a worker without ALERT_DISPATCH does not deliver"
        try:
            await delivery.deliver(db=db, settings=settings, http=http, tenant=tenant,
                                   delivery_id=UUID(delivery_id))
        except delivery.DeliveryFailed:
            raise
        except Exception as exc:
            if context.job.attempts >= UNEXPECTED_RETRIES:  # no retry follows this one
                with contextlib.suppress(Exception):
                    await delivery.give_up(
                        db=db, tenant=tenant, delivery_id=UUID(delivery_id),
                        reason=f"{exc.__class__.__name__} after {UNEXPECTED_RETRIES + 1} attempts")
            raise

    if settings.alert_dispatch:
        @app.periodic(cron="* * * * * *")
        @app.task(name=ANNOUNCE_TASK, queue=ALERT_QUEUE, queueing_lock=ANNOUNCE_TASK)
        async def announce(timestamp: int) -> None:
            await delivery.announce(db=db)

    return app


async def run(settings: Settings) -> None:
    """Runs until SIGTERM/SIGINT. A PostgreSQL restart does not end it: procrastinate stops
    its worker when its LISTEN connection breaks, and this loop starts it again (fresh
    connector pool) with backoff; jobs cut off meanwhile are retried by the queue.
    In-process rather than exit-and-be-restarted: the supervisor (`qc-collector serve`,
    Kubernetes) would add its own growing delays (CrashLoopBackOff) to every database
    blip."""
    assert settings.database_url is not None
    db = await Database(settings.database_url, min_size=1,
                        max_size=settings.worker_concurrency + 4
                        + (ALERT_CONCURRENCY if settings.alert_dispatch else 0),
                        timeout=settings.db_pool_timeout,
                        prepare_threshold=settings.db_prepare_threshold).open()
    http = delivery.client(settings)
    for handler in logging.getLogger().handlers:
        handler.addFilter(_not_routine)
    stopping = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stopping.set)
    try:
        if settings.alert_dispatch:
            # first: refuses to start in production without ENCRYPTION_KEY
            await system_alerts.sync_rules(db=db, settings=settings)
            log.info("alert dispatcher started (window %ss, retries polled every %ss)",
                     settings.alert_dedup_window, settings.alert_poll_seconds)
        app = build(settings, db, http if settings.alert_dispatch else None)
        watch = asyncio.create_task(
            system_alerts.DatabaseWatch(db=db, settings=settings, http=http).run())
        try:
            await _run_jobs(app, settings, stopping)
        finally:
            watch.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await watch
    finally:
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.remove_signal_handler(sig)
        await http.aclose()
        await db.close()


def listening(settings: Settings) -> tuple[list[str], int, float]:
    """(the queues this worker takes jobs from, how many at once, the polling interval for
    retries, which NOTIFY does not announce). Without ALERT_DISPATCH: not the alerts."""
    queues, concurrency = [EXPORT_QUEUE, MAINTENANCE_QUEUE], settings.worker_concurrency
    polling = min(5.0, settings.worker_heartbeat)
    if settings.alert_dispatch:  # a delivery's retry is due on time, within a poll
        queues.append(ALERT_QUEUE)
        concurrency += ALERT_CONCURRENCY
        polling = min(polling, settings.alert_poll_seconds)
    return queues, concurrency, polling


async def _run_jobs(app: procrastinate.App, settings: Settings, stopping: asyncio.Event) -> None:
    queues, concurrency, polling = listening(settings)
    delay = RESTART_MIN_SECONDS
    while not stopping.is_set():
        started = time.monotonic()
        try:
            async with app.open_async():
                worker = asyncio.create_task(app.run_worker_async(
                    queues=queues, concurrency=concurrency,
                    update_heartbeat_interval=settings.worker_heartbeat,
                    fetch_job_polling_interval=polling,
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
