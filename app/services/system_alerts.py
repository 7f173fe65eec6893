"""System alerts: the service's own health, sent to the operators' channels from the
environment (SLACK_WEBHOOK_URL, EMAIL_RECIPIENTS for every level; PAGERDUTY_INTEGRATION_KEY
pages for `critical` only).

Checks and where they run:
- worker (every SYSTEM_ALERT_INTERVAL): database unreachable (critical; two failed pings
  in a row), database size over ALERT_DB_SIZE_BYTES (warning at 80 %, critical at 100 %),
  alert deliveries dead-lettered since the last check (error);
- each API process (every SYSTEM_ALERT_INTERVAL, from its own request metrics): 5xx
  responses per minute over ALERT_ERRORS_PER_MINUTE (error), ingest p95 over
  ALERT_INGEST_P95_SECONDS with at least 20 ingests (warning), requests refused by the
  per-tenant rate limit (warning, naming the tenants).

An alert is an outbox window of the tenant ':system' (one "rule" per check and level), so
it gets the same dedup (every process and replica raising the same alert in a window
makes one message and one "+N more" summary) and the same per-channel backoff as a
tenant's. The exception is "database unreachable", which cannot go through the
database: the worker sends it directly, once per dedup window per worker process, with
the same backoff; PagerDuty folds the replicas' pages by the shared dedup key.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import math
import time
import uuid
from datetime import UTC, datetime
from typing import Any

from prometheus_client.metrics import MetricWrapperBase

from app.config import Settings
from app.services import alert_channels
from app.storage import alerts as alert_store
from app.storage.db import Database

log = logging.getLogger("qc_collector.system_alerts")

SYSTEM_TENANT = ":system"
NAMESPACE = uuid.UUID("6a0f4c52-5d7e-4b8a-9e1f-3c2d1b0a9f8e")
SLACK, EMAIL, PAGERDUTY = 0, 1, 2
TITLES = {
    "database_unreachable": "The database is unreachable",
    "database_capacity": "The database is near or over its size threshold",
    "dead_letters": "Alert deliveries were dead-lettered",
    "error_spike": "5xx error spike",
    "ingest_latency": "Ingest p95 latency is over the SLO",
    "rate_limited": "Tenants are exceeding their rate limit",
}
INGEST_OPERATIONS = ("ingest.ingest_report", "ingest.ingest_batch")


def channels(settings: Settings, level: str) -> list[tuple[int, dict[str, Any]]]:
    """The operators' channels for a level, each under a fixed number."""
    found: list[tuple[int, dict[str, Any]]] = []
    if settings.slack_webhook_url:
        found.append((SLACK, {"type": "slack", "url": settings.slack_webhook_url}))
    if settings.email_recipients:
        found.append((EMAIL, {"type": "email", "to": list(settings.email_recipients)}))
    if settings.pagerduty_integration_key and level == "critical":
        found.append((PAGERDUTY, {"type": "pagerduty",
                                  "routing_key": settings.pagerduty_integration_key}))
    return found


def rule_id(check: str, level: str) -> uuid.UUID:
    return uuid.uuid5(NAMESPACE, f"{check}:{level}")


def title(facts: dict[str, Any]) -> str:
    return f"{TITLES.get(facts.get('check', ''), facts.get('check', 'system'))}"


def rule_name(facts: dict[str, Any]) -> str:
    return f"system:{facts.get('check', 'unknown')}"


def dedup_key(tenant: str, rule: uuid.UUID, window_start: int, window: int) -> str:
    """The same as the SQL of enqueue_alerts: hash(tenant, rule, window)."""
    return hashlib.sha256(f"{tenant}|{rule}|{window_start}|{window}".encode()).hexdigest()[:32]


async def raise_alert(*, db: Database, settings: Settings, check: str, level: str,
                      facts: dict[str, Any]) -> None:
    log.warning("system alert [%s] %s: %s", level, check, facts)
    async with db.tenant(SYSTEM_TENANT, actor="system") as conn:
        await alert_store.enqueue_system(conn, tenant=SYSTEM_TENANT, rule_id=rule_id(check, level),
                                         level=level, facts={"check": check, "facts": facts},
                                         window=settings.alert_dedup_window)


# -- the worker's checks --------------------------------------------------------------


class WorkerChecks:
    def __init__(self, *, db: Database, settings: Settings, client: Any = None) -> None:
        self.db = db
        self.settings = settings
        self.client = client
        self.failed_pings = 0
        self.last_dead_check = datetime.now(UTC)
        self.direct_windows: set[int] = set()
        self.tasks: set[asyncio.Task[None]] = set()

    async def run(self) -> None:
        while True:
            try:
                await self.check()
            except Exception as exc:  # keep watching
                log.warning("system checks failed: %s", exc.__class__.__name__)
            await asyncio.sleep(self.settings.system_alert_interval)

    async def check(self) -> None:
        if not await self.db.probe():
            self.failed_pings += 1
            if self.failed_pings >= 2:
                self.database_unreachable()
            return
        self.failed_pings = 0
        settings = self.settings
        async with self.db.system() as conn:
            size = await alert_store.database_size(conn) if settings.alert_db_size_bytes else 0
            since, self.last_dead_check = self.last_dead_check, datetime.now(UTC)
            dead = await alert_store.dead_since(conn, since=since)
        if settings.alert_db_size_bytes:
            ratio = size / settings.alert_db_size_bytes
            if ratio >= 0.8:
                await raise_alert(db=self.db, settings=settings, check="database_capacity",
                                  level="critical" if ratio >= 1.0 else "warning",
                                  facts={"size_bytes": size,
                                         "threshold_bytes": settings.alert_db_size_bytes,
                                         "percent": round(ratio * 100, 1)})
        if dead:
            await raise_alert(db=self.db, settings=settings, check="dead_letters",
                              level="error", facts={"dead_deliveries": dead})

    def database_unreachable(self) -> None:
        """Sent straight from memory: the outbox lives in the unreachable database."""
        window = self.settings.alert_dedup_window
        start = int(time.time()) // window * window
        if start in self.direct_windows:
            return
        self.direct_windows = {start}
        log.error("system alert [critical] database_unreachable")
        task = asyncio.get_running_loop().create_task(self._send_direct(start, window))
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    async def _send_direct(self, start: int, window: int) -> None:
        settings = self.settings
        rule = rule_id("database_unreachable", "critical")
        message = alert_channels.Message(
            id=str(uuid.uuid4()), delivery_id=str(uuid.uuid4()), tenant=SYSTEM_TENANT,
            rule_id=str(rule), rule_name="system:database_unreachable",
            dedup_key=dedup_key(SYSTEM_TENANT, rule, start, window), kind="first",
            level="critical", summary=TITLES["database_unreachable"], matches=1,
            window_start=datetime.fromtimestamp(start, UTC).isoformat(),
            window_end=datetime.fromtimestamp(start + window, UTC).isoformat(),
            details={"facts": {"failed_pings": self.failed_pings}})
        from app.services import alert_targets

        client = self.client or alert_targets.client(
            allow_private=settings.alerts_allow_private_targets,
            timeout=settings.alert_send_timeout)
        try:
            await asyncio.gather(*(self._one_channel(client, config, message)
                                   for _, config in channels(settings, "critical")))
        finally:
            if self.client is None:
                await client.aclose()

    async def _one_channel(self, client: Any, config: dict[str, Any],
                           message: alert_channels.Message) -> None:
        settings = self.settings
        for attempt in range(1, settings.alert_max_attempts + 1):
            outcome = await alert_channels.send(client, settings, config, message)
            if outcome.ok:
                log.info("system alert delivered directly via %s", config["type"])
                return
            if outcome.permanent or attempt == settings.alert_max_attempts:
                log.error("system alert via %s dead-lettered: %s", config["type"], outcome.error)
                return
            await asyncio.sleep(alert_channels.backoff(
                attempt, base=settings.alert_retry_base_seconds,
                cap=settings.alert_retry_max_seconds, retry_after=outcome.retry_after))


# -- each API process's checks ----------------------------------------------------------


def _samples(metric: MetricWrapperBase) -> list[Any]:
    return [s for family in metric.collect() for s in family.samples]


def _p95(buckets: dict[float, float]) -> float | None:
    """The upper bound of the bucket holding the 95th percentile (cumulative counts)."""
    ordered = sorted(buckets.items())
    total = ordered[-1][1] if ordered else 0
    if total <= 0:
        return None
    for bound, count in ordered:
        if count >= 0.95 * total:
            return bound
    return math.inf


class ApiChecks:
    """Deltas of this process's own request metrics between two checks."""

    def __init__(self, *, db: Database, settings: Settings) -> None:
        self.db = db
        self.settings = settings
        self.previous: dict[str, Any] | None = None
        self.at = time.monotonic()

    @staticmethod
    def snapshot() -> dict[str, Any]:
        from app.observability import LATENCY, REJECTED, REQUESTS

        errors = sum(s.value for s in _samples(REQUESTS)
                     if s.name.endswith("_total") and s.labels.get("status", "").startswith("5"))
        buckets: dict[float, float] = {}
        for s in _samples(LATENCY):
            if s.name.endswith("_bucket") and s.labels.get("operation") in INGEST_OPERATIONS:
                bound = float(s.labels["le"])
                buckets[bound] = buckets.get(bound, 0.0) + s.value
        limited: dict[str, float] = {}
        for s in _samples(REJECTED):
            if s.name.endswith("_total") and s.labels.get("reason") == "429":
                limited[s.labels["tenant"]] = s.value
        return {"errors": errors, "buckets": buckets, "limited": limited}

    async def run(self) -> None:
        while True:
            await asyncio.sleep(self.settings.system_alert_interval)
            try:
                await self.check()
            except Exception as exc:  # keep watching
                log.warning("system checks failed: %s", exc.__class__.__name__)

    async def check(self) -> None:
        now, current = time.monotonic(), self.snapshot()
        previous, elapsed = self.previous, max(now - self.at, 1e-6)
        self.previous, self.at = current, now
        if previous is None:
            return
        settings = self.settings
        per_minute = (current["errors"] - previous["errors"]) * 60.0 / elapsed
        if per_minute > settings.alert_errors_per_minute:
            await raise_alert(db=self.db, settings=settings, check="error_spike",
                              level="error", facts={"errors_per_minute": round(per_minute, 1),
                                                    "threshold": settings.alert_errors_per_minute})
        delta = {b: n - previous["buckets"].get(b, 0.0) for b, n in current["buckets"].items()}
        count = max(delta.values(), default=0.0)
        p95 = _p95(delta)
        if count >= 20 and p95 is not None and p95 > settings.alert_ingest_p95_seconds:
            await raise_alert(db=self.db, settings=settings, check="ingest_latency",
                              level="warning", facts={"p95_seconds_at_most": p95,
                                                      "slo_seconds": settings.alert_ingest_p95_seconds,
                                                      "ingests": int(count)})
        limited = {t: int(n - previous["limited"].get(t, 0.0))
                   for t, n in current["limited"].items() if n > previous["limited"].get(t, 0.0)}
        if limited:
            await raise_alert(db=self.db, settings=settings, check="rate_limited",
                              level="warning", facts={"refused_by_tenant": limited})
