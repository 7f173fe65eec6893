"""The ingest use case: rules, then the key's claim, then the group commit, then the answer.

`ingest` returns domain values (the stored answer, the report created, whether it was a
replay); app/handlers/ingest.py and imports.py turn them into status, headers and body.
`commit` is what one group commit does with the work of its requests.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import orjson

from app.services.ingest import idempotency
from app.services.ingest.group_commit import GroupCommitter
from app.services.ingest.idempotency import IN_FLIGHT_TIMEOUT, Pending, StoredAnswer
from app.services.ingest.submissions import PreparedReport, prepare_all
from app.storage import reports as report_store
from app.storage.db import Connection, Database


@dataclass(slots=True)
class Work:
    tenant: str
    reports: list[PreparedReport]
    pending: Pending | None = None


@dataclass(frozen=True, slots=True)
class Ingested:
    """The answer (the reports' summaries as JSON: byte for byte the first answer's on a
    replay), the report created by a single ingest, and the new reports' severities
    (empty on a replay: nothing new was stored)."""

    answer: StoredAnswer
    replayed: bool
    severities: tuple[str, ...] = ()


async def write(conn: Connection, works: list[Work], *, alert_window: int = 300) -> None:
    """Write every work item's rows on `conn`, tenant by tenant: the reports, their rollup,
    the alert outbox (matched in the same transaction: a committed report never misses
    its alert, a rolled-back one never sends one), the completed Idempotency-Keys and the
    tenant's change version. More than one statement needs the caller's transaction."""
    by_tenant: dict[str, list[Work]] = defaultdict(list)
    for work in works:
        by_tenant[work.tenant].append(work)
    # Sorted tenants (and rollup keys, in the statement): concurrent writers take row
    # locks in one order.
    for tenant in sorted(by_tenant):
        group = by_tenant[tenant]
        await report_store.write_ingest(
            conn, tenant=tenant, rows=[p.row for w in group for p in w.reports],
            completed=[idempotency.completion(w.pending) for w in group if w.pending],
            alert_window=alert_window)


async def commit(db: Database, works: list[Work], *, alert_window: int = 300) -> None:
    """One group commit's write as one unit: one tenant's rows that fit one statement go
    alone in autocommit (a transaction by itself, no BEGIN and COMMIT round trips); more
    go in one pipelined transaction."""
    alone = (len({work.tenant for work in works}) == 1
             and report_store.fits_one_statement([p.row for w in works for p in w.reports]))
    async with db.system(pipeline=not alone) as conn:
        await write(conn, works, alert_window=alert_window)


def committer(*, db: Database, max_rows: int = 5000, alert_window: int = 300) -> GroupCommitter[Work]:
    """The process's group committer for ingest work."""
    async def commit_works(works: list[Work]) -> None:
        await commit(db, works, alert_window=alert_window)

    return GroupCommitter(db=db, write=commit_works, size=lambda work: len(work.reports),
                          max_rows=max_rows)


async def ingest(*, db: Database, committer: GroupCommitter[Work], tenant: str, operation: str,
                 submissions: list[dict[str, Any]], batch: bool, request_body: Any,
                 idempotency_key: str | None, idempotency_ttl: timedelta,
                 in_flight_timeout: timedelta = IN_FLIGHT_TIMEOUT) -> Ingested:
    prepared = prepare_all(submissions, tenant=tenant, batch=batch)
    if batch:
        answer = StoredAnswer(orjson.dumps({"items": [p.summary for p in prepared]}), None)
    else:
        answer = StoredAnswer(orjson.dumps(prepared[0].summary), prepared[0].summary["id"])
    severities = tuple(p.summary["severity"] for p in prepared)
    if idempotency_key is None:
        await committer.submit(Work(tenant, prepared))
        return Ingested(answer, replayed=False, severities=severities)

    key_fingerprint = idempotency.fingerprint(operation, request_body)
    stored = await db.idempotent(lambda: idempotency.claim(
        db, tenant=tenant, key=idempotency_key, fingerprint=key_fingerprint,
        ttl=idempotency_ttl, in_flight_timeout=in_flight_timeout))
    if stored is not None:
        return Ingested(stored, replayed=True)
    try:
        await committer.submit(Work(tenant, prepared, Pending(idempotency_key, answer)))
    except Exception:
        # Not committed — or, if the connection broke during COMMIT, perhaps committed,
        # and then the key is already "done" and release (in_flight only) leaves it.
        # (A cancelled request releases nothing: its write may still commit; the
        # in-flight timeout frees the key.)
        await idempotency.release(db, tenant=tenant, key=idempotency_key,
                                  within=in_flight_timeout)
        raise
    return Ingested(answer, replayed=False, severities=severities)
