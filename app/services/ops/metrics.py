"""GET /ops/metrics: one tenant's operational numbers, computed from PostgreSQL.

Reports by severity (last hour from reports, last 24 h from the hourly rollup), export
jobs by status, the notification backlog and dead letters, rejections by reason and the
request statistics of the last hour (ingest latency p50/p95 from a histogram, errors per
minute, the 5xx ratio). Request statistics are accumulated per worker process
(app.observability.OPS) and flushed every few seconds by flush_loop, so the numbers are
those of every worker and replica. Counts only: no subject, message, run id or label.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson

from app.observability import OPS, OPS_LATENCY_BOUNDS, OpsAccumulator
from app.services.canonical import rfc3339
from app.services.reports import matches
from app.storage import ops as ops_store
from app.storage.db import Database

log = logging.getLogger("qc_collector.ops")

WINDOW = timedelta(hours=1)
WINDOW_MINUTES = 60


def percentile(histogram: list[int], quantile: float) -> float | None:
    """Milliseconds at `quantile`, linearly interpolated inside its bucket (None: no data)."""
    total = sum(histogram)
    if total == 0:
        return None
    rank = quantile * total
    seen = 0
    for index, count in enumerate(histogram):
        if count and seen + count >= rank:
            if index >= len(OPS_LATENCY_BOUNDS):
                return OPS_LATENCY_BOUNDS[-1] * 1000
            lower = OPS_LATENCY_BOUNDS[index - 1] if index else 0.0
            upper = OPS_LATENCY_BOUNDS[index]
            return round((lower + (upper - lower) * (rank - seen) / count) * 1000, 3)
        seen += count
    return OPS_LATENCY_BOUNDS[-1] * 1000


@dataclass(frozen=True, slots=True)
class Metrics:
    etag: str
    document: dict[str, Any] | None  # None: not modified


async def get_metrics(*, db: Database, tenant: str, if_none_match: str | None,
                      now: datetime | None = None) -> Metrics:
    moment = (now or datetime.now(UTC)).replace(second=0, microsecond=0)
    window_start = moment - WINDOW + timedelta(minutes=1)
    async with db.tenant(tenant, read=True) as conn:
        raw = await ops_store.metrics(conn, tenant=tenant, now=moment, window_start=window_start)
    counts = raw.get("requests") or {}  # not `requests`: bandit took it for the library (B113)
    total = int(counts.get("requests", 0))
    client_errors = int(counts.get("client_errors", 0))
    server_errors = int(counts.get("server_errors", 0))
    histogram = [int(n) for n in raw.get("ingest_latency") or []]
    document = {
        "as_of": rfc3339(moment),
        "reports": {"last_hour": raw.get("reports_last_hour") or {},
                    "last_24h": raw.get("reports_last_24h") or {}},
        "exports": raw.get("exports") or {},
        "notifications": {"backlog": int(raw.get("notification_backlog", 0)),
                          "dead_letters": int(raw.get("dead_letters", 0)),
                          "dead_letters_last_24h": int(raw.get("dead_letters_last_24h", 0))},
        "requests": {
            "window_minutes": WINDOW_MINUTES,
            "total": total,
            "client_errors": client_errors,
            "server_errors": server_errors,
            "errors_per_minute": round((client_errors + server_errors) / WINDOW_MINUTES, 3),
            "server_error_ratio": round(server_errors / total, 6) if total else 0.0,
            "rejected": raw.get("rejected_last_hour") or {},
            "ingest_latency_ms": {"count": sum(histogram),
                                  "p50": percentile(histogram, 0.50),
                                  "p95": percentile(histogram, 0.95)},
        },
    }
    body = orjson.dumps(document, option=orjson.OPT_SORT_KEYS)
    tag = '"' + hashlib.sha256(tenant.encode() + b"\0" + body).hexdigest()[:32] + '"'
    if matches(if_none_match, tag):
        return Metrics(tag, None)
    return Metrics(tag, document)


def _rows(accumulator: OpsAccumulator) -> tuple[
        list[dict[str, Any]], list[dict[str, Any]],
        dict[tuple[str, int, bool], list[int]], dict[tuple[str, int, str], int]]:
    requests, rejections = accumulator.drain()
    request_rows = [
        {"tenant": tenant, "minute": rfc3339(datetime.fromtimestamp(minute, UTC)),
         "ingest": ingest, "requests": row[0], "client_errors": row[1],
         "server_errors": row[2], "latency": row[3:]}
        for (tenant, minute, ingest), row in requests.items()]
    rejection_rows = [
        {"tenant": tenant, "minute": rfc3339(datetime.fromtimestamp(minute, UTC)),
         "reason": reason, "n": n}
        for (tenant, minute, reason), n in rejections.items()]
    return request_rows, rejection_rows, requests, rejections


async def flush(*, db: Database, accumulator: OpsAccumulator = OPS) -> int:
    request_rows, rejection_rows, requests, rejections = _rows(accumulator)
    if not request_rows and not rejection_rows:
        return 0
    try:
        async with db.system() as conn:
            await ops_store.record(conn, requests=request_rows, rejections=rejection_rows)
    except BaseException:  # failed or cancelled mid-flush: the next flush adds them
        accumulator.restore(requests, rejections)
        raise
    return len(request_rows) + len(rejection_rows)


async def flush_loop(*, db: Database, every: float) -> None:
    while True:
        await asyncio.sleep(every)
        try:
            await flush(db=db)
        except Exception as exc:
            log.warning("ops metrics flush failed: %s", exc.__class__.__name__)
