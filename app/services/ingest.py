"""Ingest: turn submissions into stored reports, idempotently, with group commit.

A submission is checked beyond its schema (timestamps, label keys), given its server
fields and canonical bytes, and handed to the process's GroupCommitter, which writes
the reports of every request waiting at that moment in one transaction. Each request
is answered only after the transaction holding its rows has committed; if a shared
transaction fails, its requests are retried one by one so a bad one fails alone.
"""

from __future__ import annotations

import asyncio
import logging
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import UUID

import orjson
import uuid_utils

from app.errors import IdempotencyInFlight, IdempotencyKeyReused, InvalidBody, ServiceUnavailable
from app.services.canonical import canonical_bytes, derive, rfc3339, sha256_hex
from app.storage import alerts as alert_store
from app.storage import idempotency as idem_store
from app.storage import reports as report_store
from app.storage.db import Connection, Database, set_tenant

log = logging.getLogger("qc_collector.ingest")

# A first request that has not finished after this long is presumed dead; its key may
# be taken over by a retry.
IN_FLIGHT_TIMEOUT = timedelta(seconds=60)
LABEL_KEY_MAX = 64


@dataclass(slots=True)
class PreparedReport:
    row: tuple[Any, ...]
    summary: dict[str, Any]
    rollup_key: tuple[datetime, str, str, str]


@dataclass(slots=True)
class IdempotentAnswer:
    key: str
    status: int
    body: bytes
    location: str | None


@dataclass(slots=True)
class Work:
    tenant: str
    reports: list[PreparedReport]
    answer: IdempotentAnswer | None = None
    future: asyncio.Future[None] | None = field(default=None, repr=False)


@dataclass(frozen=True, slots=True)
class IngestResult:
    status: int
    body: bytes
    location: str | None
    replayed: bool
    severities: tuple[str, ...] = ()


def _parse_time(raw: str) -> datetime | None:
    """The instant in UTC (PostgreSQL refuses offsets beyond 15:59 that RFC 3339 allows)."""
    try:
        moment = datetime.fromisoformat(raw)
        return moment.astimezone(UTC) if moment.tzinfo is not None else None
    except (ValueError, OverflowError):  # not a date-time, or out of range once in UTC
        return None


def _check(submission: dict[str, Any], pointer: str) -> list[dict[str, str]]:
    """What the JSON Schema cannot say: a real instant, label key length, no NUL keys."""
    errors = []
    if _parse_time(submission["observed_at"]) is None:
        errors.append({"pointer": f"{pointer}/observed_at",
                       "detail": "not an RFC 3339 date-time with an offset, or out of range"})
    for key in submission.get("labels", {}):
        if not key or len(key) > LABEL_KEY_MAX or "\x00" in key:
            errors.append({"pointer": f"{pointer}/labels",
                           "detail": f"label keys must be 1-{LABEL_KEY_MAX} characters without NUL"})
    return errors


def prepare(submission: dict[str, Any], *, tenant: str, received_at: datetime) -> PreparedReport:
    report_id = UUID(bytes=uuid_utils.uuid7().bytes)
    checks = submission["checks"]
    status, severity, counts = derive(checks)
    labels = submission.get("labels", {})
    received = rfc3339(received_at)
    document: dict[str, Any] = {
        "source": submission["source"],
        "subject": submission["subject"],
        "observed_at": submission["observed_at"],
        "labels": labels,
        "checks": checks,
        "id": str(report_id),
        "tenant": tenant,
        "received_at": received,
        "status": status,
        "severity": severity,
        "counts": counts,
    }
    run_id = submission.get("run_id")
    if run_id is not None:
        document["run_id"] = run_id
    canonical = canonical_bytes(document)
    digest = sha256_hex(canonical)
    observed_at = _parse_time(submission["observed_at"])
    summary = {k: v for k, v in document.items() if k != "checks"}
    summary["content_sha256"] = digest
    summary["signed"] = False
    row = (report_id, received_at, observed_at, submission["observed_at"],
           submission["source"], submission["subject"], run_id, labels, status, severity,
           counts["pass"], counts["warn"], counts["fail"], digest, canonical)
    hour = received_at.replace(minute=0, second=0, microsecond=0)
    return PreparedReport(row=row, summary=summary,
                          rollup_key=(hour, severity, status, submission["source"]))


def prepare_all(submissions: list[dict[str, Any]], *, tenant: str, batch: bool,
                now: datetime | None = None) -> list[PreparedReport]:
    """All or nothing: any invalid submission raises InvalidBody naming each one."""
    errors: list[dict[str, str]] = []
    bad: list[int] = []
    for index, submission in enumerate(submissions):
        found = _check(submission, f"/reports/{index}" if batch else "")
        if found:
            errors.extend(found)
            bad.append(index)
    if errors:
        raise InvalidBody(errors, bad if batch else None)
    received_at = now or datetime.now(UTC)
    return [prepare(s, tenant=tenant, received_at=received_at) for s in submissions]


async def write(conn: Connection, works: list[Work], *, alert_window: int = 300) -> None:
    """Write every work item's rows inside the caller's transaction, tenant by tenant.
    The tenant's alert rules are matched in the same transaction (the outbox): a
    committed report never misses its alert, a rolled-back one never sends one."""
    by_tenant: dict[str, list[Work]] = defaultdict(list)
    for work in works:
        by_tenant[work.tenant].append(work)
    # Sorted tenants and rollup keys: concurrent writers take row locks in one order.
    for tenant in sorted(by_tenant):
        group = by_tenant[tenant]
        await set_tenant(conn, tenant)
        rows = [p.row for w in group for p in w.reports]
        await report_store.insert_rows(conn, tenant=tenant, rows=rows)
        rollup: dict[tuple[datetime, str, str, str], int] = defaultdict(int)
        for work in group:
            for prepared in work.reports:
                rollup[prepared.rollup_key] += 1
        await report_store.add_rollup(conn, tenant=tenant, counts=rollup)
        await alert_store.enqueue(conn, tenant=tenant, report_ids=[row[0] for row in rows],
                                  window=alert_window)
        for work in group:
            if work.answer is not None:
                a = work.answer
                await idem_store.complete(conn, tenant=tenant, key=a.key, status=a.status,
                                          body=a.body, location=a.location)
        await report_store.bump_version(conn, tenant=tenant)


class GroupCommitter:
    """Coalesces concurrent ingests of this process into shared transactions."""

    def __init__(self, *, db: Database, max_rows: int = 5000, alert_window: int = 300) -> None:
        self._db = db
        self._max_rows = max_rows
        self._alert_window = alert_window
        self._pending: list[Work] = []
        self._wakeup = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run(), name="group-commit")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            try:
                await self._task
            except asyncio.CancelledError:
                pass
        for work in self._pending:
            if work.future is not None and not work.future.done():
                work.future.set_exception(RuntimeError("shutting down"))

    async def submit(self, work: Work) -> None:
        """Returns once the work is committed; raises if it could not be."""
        work.future = asyncio.get_running_loop().create_future()
        self._pending.append(work)
        self._wakeup.set()
        await asyncio.shield(work.future)

    def _take(self) -> list[Work]:
        taken: list[Work] = []
        rows = 0
        while self._pending and (not taken or rows + len(self._pending[0].reports) <= self._max_rows):
            work = self._pending.pop(0)
            taken.append(work)
            rows += len(work.reports)
        return taken

    async def _run(self) -> None:
        while True:
            await self._wakeup.wait()
            self._wakeup.clear()
            while self._pending:
                await self._flush(self._take())

    async def _commit(self, works: list[Work]) -> None:
        async def unit() -> None:
            # pipelined: the whole write is one round trip plus the COMMIT
            async with self._db.system(pipeline=True) as conn:
                await write(conn, works, alert_window=self._alert_window)

        # nothing of a rolled-back write is kept: a deadlock's victim simply runs again
        await self._db.idempotent(unit)

    async def _flush(self, works: list[Work]) -> None:
        try:
            await self._commit(works)
        except ServiceUnavailable as exc:
            # the database, not a request, failed: one by one would only wait longer.
            # Each waiting request gets its own 503.
            log.warning("ingest transaction of %d requests failed: database unavailable",
                        len(works))
            for work in works:
                _settle(work, ServiceUnavailable(exc.detail, retry_after=exc.retry_after))
            return
        except Exception as exc:
            if len(works) == 1:
                _settle(works[0], exc)
                return
            log.warning("shared ingest transaction failed (%s); retrying %d requests one by one",
                        exc.__class__.__name__, len(works))
            for work in works:
                try:
                    await self._commit([work])
                except Exception as own:
                    _settle(work, own)
                else:
                    _settle(work, None)
            return
        for work in works:
            _settle(work, None)


def _settle(work: Work, exc: BaseException | None) -> None:
    if work.future is None or work.future.done():
        return
    if exc is None:
        work.future.set_result(None)
    else:
        work.future.set_exception(exc)


# -- the use case -------------------------------------------------------------------


def fingerprint(operation: str, body: Any) -> str:
    return sha256_hex(operation.encode() + b"\n" + canonical_bytes(body))


async def ingest(*, db: Database, committer: GroupCommitter, tenant: str, operation: str,
                 submissions: list[dict[str, Any]], batch: bool, request_body: Any,
                 idempotency_key: str | None, idempotency_ttl: timedelta,
                 in_flight_timeout: timedelta = IN_FLIGHT_TIMEOUT) -> IngestResult:
    prepared = prepare_all(submissions, tenant=tenant, batch=batch)
    if batch:
        body = orjson.dumps({"items": [p.summary for p in prepared]})
        location = None
    else:
        body = orjson.dumps(prepared[0].summary)
        location = f"/reports/{prepared[0].summary['id']}"
    severities = tuple(p.summary["severity"] for p in prepared)
    if idempotency_key is None:
        await committer.submit(Work(tenant, prepared))
        return IngestResult(201, body, location, replayed=False, severities=severities)

    key_fingerprint = fingerprint(operation, request_body)
    stored = await db.idempotent(lambda: _claim(
        db, tenant=tenant, key=idempotency_key, fingerprint=key_fingerprint,
        ttl=idempotency_ttl, in_flight_timeout=in_flight_timeout))
    if stored is not None:
        return stored
    answer = IdempotentAnswer(idempotency_key, 201, body, location)
    try:
        await committer.submit(Work(tenant, prepared, answer))
    except Exception:
        # Not committed — or, if the connection broke during COMMIT, perhaps committed,
        # and then the key is already "done" and release (in_flight only) leaves it.
        # (A cancelled request releases nothing: its write may still commit; the
        # in-flight timeout frees the key.)
        await _release(db, tenant=tenant, key=idempotency_key, within=in_flight_timeout)
        raise
    return IngestResult(201, body, location, replayed=False, severities=severities)


_releasing: set[asyncio.Task[None]] = set()


async def _release(db: Database, *, tenant: str, key: str, within: timedelta) -> None:
    """Free the key for the client's retry; while the database is down, keep trying in
    the background so the retry is not refused as in flight until the timeout."""
    try:
        async with db.tenant(tenant) as conn:
            await idem_store.release(conn, tenant=tenant, key=key)
        return
    except ServiceUnavailable:
        pass

    async def later() -> None:
        deadline = asyncio.get_running_loop().time() + within.total_seconds()
        while asyncio.get_running_loop().time() < deadline:
            await asyncio.sleep(1.0)
            try:
                async with db.tenant(tenant) as conn:
                    await idem_store.release(conn, tenant=tenant, key=key)
                return
            except ServiceUnavailable:
                continue

    task = asyncio.get_running_loop().create_task(later())
    _releasing.add(task)
    task.add_done_callback(_releasing.discard)


async def _claim(db: Database, *, tenant: str, key: str, fingerprint: str,
                 ttl: timedelta, in_flight_timeout: timedelta) -> IngestResult | None:
    """None when this request now owns the key; else the stored answer (or an error)."""
    async with db.tenant(tenant) as conn:
        if await idem_store.claim(conn, tenant=tenant, key=key, fingerprint=fingerprint):
            return None
        record = await idem_store.get(conn, tenant=tenant, key=key)
        if record is None:  # released between our insert and read: try once more
            if await idem_store.claim(conn, tenant=tenant, key=key, fingerprint=fingerprint):
                return None
            raise IdempotencyInFlight()
        age = datetime.now(UTC) - record["created_at"]
        expired = age > ttl
        abandoned = record["state"] == "in_flight" and age > in_flight_timeout
        if expired or abandoned:
            if await idem_store.reclaim(conn, tenant=tenant, key=key, fingerprint=fingerprint,
                                        seen_created_at=record["created_at"]):
                return None
            raise IdempotencyInFlight()
        if record["fingerprint"] != fingerprint:
            raise IdempotencyKeyReused()
        if record["state"] == "in_flight":
            raise IdempotencyInFlight()
        return IngestResult(record["response_status"], bytes(record["response_body"]),
                            record["location"], replayed=True)


async def prune_idempotency(*, db: Database, older_than: datetime) -> int:
    async with db.system() as conn:
        return await idem_store.prune(conn, older_than=older_than)

