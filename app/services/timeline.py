"""Timeline: counts per UTC hour or day, aggregated in SQL (from a rollup when one can)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import orjson

from app.errors import BadRequest
from app.services.canonical import rfc3339
from app.services.reports import Filters
from app.services.versions import etag, versioned_read
from app.storage import reports as report_store
from app.storage.db import Database

WIDTH = {"hour": timedelta(hours=1), "day": timedelta(days=1)}
DEFAULT_SPAN = {"hour": timedelta(hours=48), "day": timedelta(days=30)}
MAX_BUCKETS = 1000
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def floor(moment: datetime, width: timedelta) -> datetime:
    return EPOCH + ((moment - EPOCH) // width) * width


def ceil(moment: datetime, width: timedelta) -> datetime:
    start = floor(moment, width)
    return start if start == moment else start + width


def covering(since: datetime | None, until: datetime | None, now: datetime, *,
             width: timedelta, default_span: timedelta) -> tuple[datetime, datetime, timedelta]:
    """Whole `width` units covering [since, until): until defaults to now, since to
    `default_span` before it. Also the span asked for, before widening (timeline and
    dashboard bound it each their way)."""
    end = until or now
    try:
        start = since or (end - default_span)
        if start > end:
            raise BadRequest("since is after until")
        first, last = floor(start, width), ceil(end, width)
    except OverflowError:
        raise BadRequest("since/until out of range") from None
    if last == first:
        last = first + width
    return first, last, end - start


def bucket_range(bucket: str, since: datetime | None, until: datetime | None,
                 now: datetime) -> tuple[datetime, datetime]:
    """Whole buckets covering [since, until); until defaults to now."""
    width = WIDTH[bucket]
    first, last, _ = covering(since, until, now, width=width, default_span=DEFAULT_SPAN[bucket])
    count = (last - first) // width
    if count > MAX_BUCKETS:
        raise BadRequest(f"{count} {bucket} buckets requested; at most {MAX_BUCKETS}",
                         limit=MAX_BUCKETS)
    return first, last


@dataclass(frozen=True, slots=True)
class Timeline:
    etag: str
    document: bytes | None  # JSON; None: not modified


async def get_timeline(*, db: Database, tenant: str, bucket: str, group_by: str, filters: Filters,
                       if_none_match: str | None, now: datetime | None = None) -> Timeline:
    first, last = bucket_range(bucket, filters.since, filters.until, now or datetime.now(UTC))
    params = filters.sql_params()
    params.update(bucket=bucket, since=first, until=last, width=WIDTH[bucket])
    # the buckets arrive as JSON text from PostgreSQL (every bucket, empty ones too)
    tag, buckets = await versioned_read(
        db=db, tenant=tenant, if_none_match=if_none_match,
        tag_of=lambda v: etag(tenant, v, "timeline", bucket, group_by, first.isoformat(),
                              last.isoformat(), filters.key()),
        read=report_store.timeline_buckets(tenant=tenant, params=params, group_by=group_by))
    if buckets is None:
        return Timeline(tag, None)
    head = orjson.dumps({"bucket": bucket, "group_by": group_by, "since": rfc3339(first),
                         "until": rfc3339(last)})
    return Timeline(tag, head[:-1] + b',"buckets":' + buckets + b"}")
