"""GET /ops/metrics: one tenant's operational numbers, computed from PostgreSQL.

Reports by severity (last hour from reports, last 24 h from the hourly rollup), export
jobs by status, the notification backlog and dead letters, rejections by reason and the
request statistics of the last hour (ingest latency p50/p95 from a histogram, errors per
minute, the 5xx ratio). Request statistics are accumulated per worker process (OPS,
fed by app.observability's request layer) and flushed every few seconds by flush_loop,
so the numbers are those of every worker and replica. Counts only: no subject, message,
run id or label.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson

from app.services.canonical import rfc3339
from app.services.versions import matches
from app.storage import ops as ops_store
from app.storage.db import Database

log = logging.getLogger("qc_collector.ops")

WINDOW = timedelta(hours=1)
WINDOW_MINUTES = 60
# Request latency buckets in seconds, one list for both histograms: Prometheus'
# qcc_http_request_duration_seconds (1.5 s and 2 s are the SLO and rollback thresholds, so
# its p95 comparisons are exact there) and the per-tenant one kept in PostgreSQL
# (ops_request_minutes.latency: a count per bucket, +Inf last).
LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 1.5, 2.0, 5.0)
# /ops/metrics keeps refusals by status code (its documented shape)
REJECTION_REASONS = {"400", "401", "403", "404", "409", "413", "415", "422", "429"}


def percentile(histogram: list[int], quantile: float) -> float | None:
    """Milliseconds at `quantile`, linearly interpolated inside its bucket (None: no data)."""
    total = sum(histogram)
    if total == 0:
        return None
    rank = quantile * total
    seen = 0
    for index, count in enumerate(histogram):
        if count and seen + count >= rank:
            if index >= len(LATENCY_BUCKETS):
                return LATENCY_BUCKETS[-1] * 1000
            lower = LATENCY_BUCKETS[index - 1] if index else 0.0
            upper = LATENCY_BUCKETS[index]
            return round((lower + (upper - lower) * (rank - seen) / count) * 1000, 3)
        seen += count
    return LATENCY_BUCKETS[-1] * 1000


class OpsAccumulator:
    """Per-tenant request counts per minute for /ops/metrics, kept in process memory only
    until the next flush (flush_loop adds them to PostgreSQL with one
    upsert, so every worker and replica contributes). Requests without an authenticated
    tenant belong to no tenant and are only in Prometheus."""

    def __init__(self) -> None:
        self.requests: dict[tuple[str, int, bool], list[int]] = {}
        self.rejections: dict[tuple[str, int, str], int] = {}

    def add(self, tenant: str, ingest: bool, status: int, elapsed: float,
            now: float | None = None) -> None:
        minute = int((now if now is not None else time.time()) // 60) * 60
        row = self.requests.get((tenant, minute, ingest))
        if row is None:
            row = self.requests[(tenant, minute, ingest)] = [0] * (3 + len(LATENCY_BUCKETS) + 1)
        row[0] += 1
        if 400 <= status < 500:
            row[1] += 1
        elif status >= 500:
            row[2] += 1
        bucket = len(LATENCY_BUCKETS)
        for index, bound in enumerate(LATENCY_BUCKETS):
            if elapsed <= bound:
                bucket = index
                break
        row[3 + bucket] += 1
        reason = str(status)
        if reason in REJECTION_REASONS:
            key = (tenant, minute, reason)
            self.rejections[key] = self.rejections.get(key, 0) + 1

    def drain(self) -> tuple[dict[tuple[str, int, bool], list[int]], dict[tuple[str, int, str], int]]:
        requests, rejections = self.requests, self.rejections
        self.requests, self.rejections = {}, {}
        return requests, rejections

    def restore(self, requests: dict[tuple[str, int, bool], list[int]],
                rejections: dict[tuple[str, int, str], int]) -> None:
        """Puts back a batch whose flush failed (merged with what arrived meanwhile)."""
        for key, row in requests.items():
            mine = self.requests.setdefault(key, [0] * len(row))
            for index, value in enumerate(row):
                mine[index] += value
        for rkey, n in rejections.items():
            self.rejections[rkey] = self.rejections.get(rkey, 0) + n


OPS = OpsAccumulator()


@dataclass(frozen=True, slots=True)
class Metrics:
    etag: str
    document: dict[str, Any] | None  # None: not modified


async def get_metrics(*, db: Database, tenant: str, if_none_match: str | None,
                      now: datetime | None = None) -> Metrics:
    moment = (now or datetime.now(UTC)).replace(second=0, microsecond=0)
    window_start = moment - WINDOW + timedelta(minutes=1)
    async with db.tenant(tenant, read=True) as conn:
        raw = await ops_store.metrics(conn, tenant=tenant, now=moment, window_start=window_start,
                                      latency_slots=len(LATENCY_BUCKETS) + 1)
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
