"""System alerts: the service's own health, sent to the operators' channels from the
environment (SLACK_WEBHOOK_URL, EMAIL_RECIPIENTS for every level; PAGERDUTY_INTEGRATION_KEY
pages for `critical` only).

Only what Prometheus cannot see is checked here (5xx spikes, ingest p95 and rate-limit
refusals are the chart's PrometheusRules, on the metrics every process exports):
- database size over ALERT_DB_SIZE_BYTES (warning at 80 %, critical at 100 %) and
  alert deliveries dead-lettered (error): a periodic job (`check`, every
  SYSTEM_ALERT_INTERVAL);
- the database unreachable as the worker sees it (critical; two failed pings in a row):
  `DatabaseWatch`, in the worker's own process, because the queue and the outbox live in
  that database.

The operators' channels are ordinary alert rules of the tenant ':system' (one per check
and level, written by `sync_rules` when a worker starts), a tenant no API key can have
(tenant names are [A-Za-z0-9._-]). A raised alert is an outbox window of such a rule, so
it gets the dedup (every worker raising the same alert in a window makes one message and
one "+N more" summary), delivery jobs, retries and fallback of any tenant's.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import time
import uuid
from datetime import UTC, datetime
from typing import Any

import httpx

from app.config import Settings
from app.services.alerts import channel_secrets as alert_secrets
from app.services.alerts import channels as alert_channels
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
}
# the checks that go through the outbox, and the levels each can raise
CHECKS = {"database_capacity": ("warning", "critical"), "dead_letters": ("error",)}


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


def dedup_key(tenant: str, rule: uuid.UUID, window_start: int, window: int) -> str:
    """The same as the outbox write in qcc_ingest_write (migration 0015): hash(tenant,
    rule, window)."""
    return hashlib.sha256(f"{tenant}|{rule}|{window_start}|{window}".encode()).hexdigest()[:32]


async def sync_rules(*, db: Database, settings: Settings) -> None:
    """The operators' channels from the environment become the ':system' tenant's rules
    (sealed like any rule's); a level with no channel has no active rule (nothing sent)."""
    vault = alert_secrets.vault(settings)

    async def write() -> None:
        async with db.tenant(SYSTEM_TENANT, actor="system", pipeline=False) as conn:
            for check, levels in sorted(CHECKS.items()):
                for level in levels:
                    rule = rule_id(check, level)
                    configs = [c for _, c in channels(settings, level)]
                    if not configs:
                        await alert_store.delete_rule(conn, tenant=SYSTEM_TENANT, rule_id=rule)
                        continue
                    sealed = vault.seal({"channels": configs, "fallback": None},
                                        context=alert_secrets.rule_context(SYSTEM_TENANT, rule))
                    await alert_store.sync_system_rule(
                        conn, tenant=SYSTEM_TENANT, rule_id=rule, name=TITLES[check],
                        channels=[alert_secrets.view(c) for c in configs], secrets=sealed)

    await db.idempotent(write)


async def raise_alert(*, db: Database, settings: Settings, check: str, level: str,
                      facts: dict[str, Any]) -> None:
    log.warning("system alert [%s] %s: %s", level, check, facts)
    async with db.tenant(SYSTEM_TENANT, actor="system") as conn:
        await alert_store.enqueue_system(conn, tenant=SYSTEM_TENANT, rule_id=rule_id(check, level),
                                         level=level, facts={"check": check, "facts": facts},
                                         window=settings.alert_dedup_window)


async def check(*, db: Database, settings: Settings, since: datetime) -> None:
    """The periodic checks: database size, deliveries dead-lettered since `since`."""
    async with db.system() as conn:
        size = await alert_store.database_size(conn) if settings.alert_db_size_bytes else 0
        dead = await alert_store.dead_since(conn, since=since)
    if settings.alert_db_size_bytes:
        ratio = size / settings.alert_db_size_bytes
        if ratio >= 0.8:
            await raise_alert(db=db, settings=settings, check="database_capacity",
                              level="critical" if ratio >= 1.0 else "warning",
                              facts={"size_bytes": size,
                                     "threshold_bytes": settings.alert_db_size_bytes,
                                     "percent": round(ratio * 100, 1)})
    if dead:
        await raise_alert(db=db, settings=settings, check="dead_letters",
                          level="error", facts={"dead_deliveries": dead})


class DatabaseWatch:
    """"The database is unreachable", as this worker sees it: sent straight from memory
    (the queue and the outbox live in the unreachable database), once per dedup window
    per worker process; a channel that failed is tried again at the next check.
    PagerDuty folds the replicas' pages by the shared dedup key."""

    def __init__(self, *, db: Database, settings: Settings, http: httpx.AsyncClient) -> None:
        self.db = db
        self.settings = settings
        self.http = http
        self.failed_pings = 0
        self.window = -1
        self.delivered: set[int] = set()

    async def check(self) -> None:
        if await self.db.probe():
            self.failed_pings = 0
            return
        self.failed_pings += 1
        if self.failed_pings >= 2:
            await self.page()

    async def page(self) -> None:
        settings, window = self.settings, self.settings.alert_dedup_window
        start = int(time.time()) // window * window
        if start != self.window:
            self.window, self.delivered = start, set()
            log.error("system alert [critical] database_unreachable")
        todo = [(no, c) for no, c in channels(settings, "critical") if no not in self.delivered]
        if not todo:
            return
        rule = rule_id("database_unreachable", "critical")
        message = alert_channels.Message(
            id=str(uuid.uuid5(rule, str(start))), delivery_id=str(uuid.uuid5(rule, f"{start}/d")),
            tenant=SYSTEM_TENANT, rule_id=str(rule), rule_name="system:database_unreachable",
            dedup_key=dedup_key(SYSTEM_TENANT, rule, start, window), kind="first",
            level="critical", summary=TITLES["database_unreachable"], matches=1,
            window_start=datetime.fromtimestamp(start, UTC).isoformat(),
            window_end=datetime.fromtimestamp(start + window, UTC).isoformat(),
            details={"facts": {"failed_pings": self.failed_pings}})
        outcomes = await asyncio.gather(
            *(alert_channels.send(self.http, settings, config, message) for _, config in todo),
            return_exceptions=True)
        for (no, config), outcome in zip(todo, outcomes, strict=True):
            if isinstance(outcome, alert_channels.Outcome) and outcome.ok:
                self.delivered.add(no)
                log.info("system alert delivered directly via %s", config["type"])
            else:
                error = outcome.error if isinstance(outcome, alert_channels.Outcome) \
                    else outcome.__class__.__name__
                log.error("system alert via %s failed (%s); trying again at the next check",
                          config["type"], error)

    async def run(self) -> None:
        while True:
            try:
                await self.check()
            except Exception as exc:  # keep watching
                log.warning("database watch failed: %s", exc.__class__.__name__)
            await asyncio.sleep(self.settings.system_alert_interval)
