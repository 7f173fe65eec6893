"""Dashboard: what is failing, where, since when. Every number is computed in SQL (the
hourly rollup where it holds the dimension); this module only fixes the period and the
validators. The console draws these answers as they are (team constant 1)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from app.errors import BadRequest
from app.services.canonical import rfc3339
from app.services.reports import Filters
from app.services.timeline import covering
from app.services.versions import etag, versioned_read
from app.storage import dashboard as dashboard_store
from app.storage.db import Database

HOUR = timedelta(hours=1)
DEFAULT_PERIOD = timedelta(hours=24)
MAX_PERIOD = timedelta(days=92)
COUNT_CAP = 500


@dataclass(frozen=True, slots=True)
class Answer:
    etag: str
    body: dict[str, Any] | None  # None: not modified


def period(since: datetime | None, until: datetime | None,
           now: datetime) -> tuple[datetime, datetime]:
    """Whole UTC hours covering [since, until): the rollup's own grain."""
    first, last, asked = covering(since, until, now, width=HOUR, default_span=DEFAULT_PERIOD)
    if asked > MAX_PERIOD:  # what was asked; widening to whole hours adds < 2 h
        raise BadRequest(f"the period is longer than {MAX_PERIOD.days} days",
                         limit=MAX_PERIOD.days)
    return first, last


def _hour(value: datetime | None) -> str | None:
    return rfc3339(value) if value else None


async def top_failing(*, db: Database, tenant: str, by: str, since: datetime | None,
                      until: datetime | None, limit: int, if_none_match: str | None,
                      now: datetime | None = None) -> Answer:
    first, last = period(since, until, now or datetime.now(UTC))
    tag, rows = await versioned_read(
        db=db, tenant=tenant, if_none_match=if_none_match,
        tag_of=lambda version: etag(tenant, version, "top", by, first.isoformat(),
                                    last.isoformat(), limit),
        read=dashboard_store.top_failing(tenant=tenant, by=by, since=first, until=last,
                                         limit=limit))
    if rows is None:
        return Answer(tag, None)
    items = [{"key": r["key"], "total": r["total"], "failing": r["failing"],
              "blocking": r["blocking"], "first_failure_hour": _hour(r["first_failure_hour"]),
              "last_failure_hour": _hour(r["last_failure_hour"])} for r in rows]
    return Answer(tag, {"by": by, "since": rfc3339(first), "until": rfc3339(last),
                        "items": items})


async def pass_rates(*, db: Database, tenant: str, since: datetime | None,
                     until: datetime | None, limit: int, if_none_match: str | None,
                     now: datetime | None = None) -> Answer:
    first, last = period(since, until, now or datetime.now(UTC))
    tag, rows = await versioned_read(
        db=db, tenant=tenant, if_none_match=if_none_match,
        tag_of=lambda version: etag(tenant, version, "pass-rates", first.isoformat(),
                                    last.isoformat(), limit),
        read=dashboard_store.pass_rates(tenant=tenant, since=first, until=last, limit=limit))
    if rows is None:
        return Answer(tag, None)
    return Answer(tag, {"since": rfc3339(first), "until": rfc3339(last), "items": [
        {"source": r["source"], "total": r["total"], "passing": r["passing"],
         "pass_rate": r["pass_rate"]} for r in rows]})


async def count_reports(*, db: Database, tenant: str, filters: Filters,
                        if_none_match: str | None) -> Answer:
    tag, n = await versioned_read(
        db=db, tenant=tenant, if_none_match=if_none_match,
        tag_of=lambda version: etag(tenant, version, "count", filters.key()),
        read=dashboard_store.count_capped(tenant=tenant, params=filters.sql_params(),
                                          cap=COUNT_CAP))
    if n is None:
        return Answer(tag, None)
    return Answer(tag, {"count": min(n, COUNT_CAP), "capped": n > COUNT_CAP, "cap": COUNT_CAP})
