"""The alert dispatcher: outbox windows -> notifications -> one delivery per channel.

Runs in the worker (any number at once). Each round:
1. asks which tenants have work (a definer function; the rest is tenant-scoped);
2. announces due windows — a window's first match at once, the "+N more" summary once
   the window has closed — locking them FOR UPDATE SKIP LOCKED, so one dispatcher
   announces each, and writing the notification and its deliveries in that transaction;
3. claims due deliveries (SKIP LOCKED, with a lease) and sends them in background
   tasks, so a slow receiver never holds up the others. A delivery that fails waits an
   exponential, jittered backoff (at least the receiver's Retry-After) and is retried on
   its own channel only; after ALERT_MAX_ATTEMPTS (or at once on a permanent failure)
   the notification goes to the rule's fallback channel, and a channel with no fallback
   left is dead-lettered. A dispatcher that dies mid-send loses its lease and the
   delivery becomes due again.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import UUID

import httpx

from app.config import Settings
from app.services import alert_channels, alert_secrets, alert_targets, system_alerts
from app.services.alert_channels import Message, Outcome
from app.services.canonical import rfc3339
from app.storage import alerts as alert_store
from app.storage.db import Database

log = logging.getLogger("qc_collector.alerts")

# a closed window is summarised this long after its end, so reports committed right at
# the boundary are counted in it
CLOSE_GRACE_SECONDS = 2.0
WINDOWS_PER_ROUND = 200
MAX_IN_FLIGHT = 16
FALLBACK = -1
KEEP_LOG_DAYS = 30  # the delivery log (GET /notifications) keeps this much
PRUNE_EVERY_SECONDS = 3600
LEVELS = {"block": "critical", "warn": "warning", "info": "info"}


def _first_summary(rule_name: str, report: dict[str, Any]) -> str:
    return (f"{rule_name}: {report.get('severity')} report ({report.get('status')}) from "
            f"{report.get('source')} ({report.get('subject')})")[:1000]


def plan_notification(tenant: str, window: dict[str, Any], rule_name: str) -> tuple[dict[str, Any], int]:
    """The notification a due window gets now, and the window's new announced count."""
    first = window["announced"] == 0
    count = 1 if first else window["matched"] - window["announced"]
    system = tenant == system_alerts.SYSTEM_TENANT
    facts = window["first_match"]
    if system:
        level = window["level"] or "error"
        title = system_alerts.title(facts)
        summary = title if first else f"{title}: +{count} more in this window"
        details: dict[str, Any] = {"facts": facts.get("facts", {}), "check": facts.get("check")}
    else:
        level = LEVELS.get(facts.get("severity", ""), "warning")
        if first:
            summary = _first_summary(rule_name, facts)
        else:
            summary = (f"{rule_name}: +{count} more matching report(s) between "
                       f"{rfc3339(window['window_start'])} and {rfc3339(window['window_end'])}")
        details = {"report": facts} if first else {"matches_in_window": window["matched"]}
    row = {"id": uuid.uuid4(), "rule_id": window["rule_id"], "rule_name": rule_name,
           "dedup_key": window["dedup_key"], "kind": "first" if first else "summary",
           "level": level, "summary": summary[:1000], "matches": count,
           "window_start": window["window_start"], "window_end": window["window_end"],
           "details": details}
    return row, (1 if first else window["matched"])


class Dispatcher:
    def __init__(self, *, db: Database, settings: Settings, client: httpx.AsyncClient | None = None) -> None:
        self.db = db
        self.settings = settings
        self.vault = alert_secrets.vault(settings)
        self.client = client or alert_targets.client(
            allow_private=settings.alerts_allow_private_targets,
            timeout=settings.alert_send_timeout)
        self.lease = settings.alert_send_timeout * 3 + 10
        self._in_flight: set[asyncio.Task[None]] = set()

    async def run(self) -> None:
        log.info("alert dispatcher started (window %ss, poll %ss)",
                 self.settings.alert_dedup_window, self.settings.alert_poll_seconds)
        pruned_at = 0.0
        try:
            while True:
                try:
                    await self.round()
                    if time.monotonic() - pruned_at > PRUNE_EVERY_SECONDS:
                        pruned_at = time.monotonic()
                        await self.prune()
                except Exception as exc:  # keep dispatching; the next round tries again
                    log.warning("alert dispatch round failed: %s", exc.__class__.__name__)
                await asyncio.sleep(self.settings.alert_poll_seconds)
        finally:
            await self.close()

    async def prune(self) -> None:
        async with self.db.system() as conn:
            gone = await alert_store.prune(
                conn, older_than=datetime.now(UTC) - timedelta(days=KEEP_LOG_DAYS))
        if gone:
            log.info("pruned %d old alert windows and notifications", gone)

    async def close(self) -> None:
        # let sends under way finish (a cancelled one would be sent again after its lease)
        if self._in_flight:
            await asyncio.wait(list(self._in_flight), timeout=self.settings.alert_send_timeout + 1)
        for task in list(self._in_flight):
            task.cancel()
        for task in list(self._in_flight):
            with contextlib.suppress(BaseException):
                await task
        await self.client.aclose()

    async def round(self) -> None:
        async with self.db.system() as conn:
            tenants = await alert_store.tenants_with_work(conn, grace=CLOSE_GRACE_SECONDS)
        for tenant in tenants:
            await self.announce(tenant)
            free = MAX_IN_FLIGHT - len(self._in_flight)
            if free > 0:
                for claimed in await self.claim(tenant, free):
                    task = asyncio.get_running_loop().create_task(self.deliver(tenant, claimed))
                    self._in_flight.add(task)
                    task.add_done_callback(self._in_flight.discard)

    async def wait_idle(self) -> None:
        while self._in_flight:
            await asyncio.gather(*list(self._in_flight), return_exceptions=True)

    # -- windows -> notifications ----------------------------------------------------

    def _channels(self, tenant: str, rule: dict[str, Any] | None,
                  level: str) -> list[tuple[int, dict[str, str]]]:
        if tenant == system_alerts.SYSTEM_TENANT:
            return [(no, alert_secrets.view(c))
                    for no, c in system_alerts.channels(self.settings, level)]
        assert rule is not None
        return list(enumerate(rule["channels"]))

    async def announce(self, tenant: str) -> int:
        # one transaction and nothing outside it: a deadlock's victim simply runs again
        return await self.db.idempotent(lambda: self._announce(tenant))

    async def _announce(self, tenant: str) -> int:
        system = tenant == system_alerts.SYSTEM_TENANT
        async with self.db.tenant(tenant, actor="dispatcher",
                                      pipeline=False) as conn:
            windows = await alert_store.lock_due_windows(
                conn, tenant=tenant, grace=CLOSE_GRACE_SECONDS, limit=WINDOWS_PER_ROUND)
            if not windows:
                return 0
            rules = {} if system else await alert_store.active_rules(
                conn, tenant=tenant, ids=list({w["rule_id"] for w in windows}))
            announced = []
            made = 0
            for window in windows:
                rule = rules.get(window["rule_id"])
                if not system and rule is None:  # deleted meanwhile: nothing more to send
                    announced.append((window["rule_id"], window["window_start"], window["matched"]))
                    continue
                name = rule["name"] if rule else system_alerts.rule_name(window["first_match"])
                notification, count = plan_notification(tenant, window, name)
                announced.append((window["rule_id"], window["window_start"], count))
                channels = self._channels(tenant, rule, notification["level"])
                if not channels:
                    log.warning("system alert with no channel configured: %s",
                                notification["summary"])
                    continue
                await alert_store.insert_notification(conn, tenant=tenant, row=notification)
                for channel_no, view in channels:
                    await alert_store.insert_delivery(conn, tenant=tenant, row={
                        "id": uuid.uuid4(), "notification_id": notification["id"],
                        "rule_id": window["rule_id"], "channel_no": channel_no,
                        "channel_type": view["type"], "target": view["target"]})
                made += 1
            await alert_store.set_announced(conn, tenant=tenant, windows=announced)
        return made

    # -- deliveries --------------------------------------------------------------------

    async def claim(self, tenant: str, limit: int) -> list[dict[str, Any]]:
        return await self.db.idempotent(lambda: self._claim(tenant, limit))

    async def _claim(self, tenant: str, limit: int) -> list[dict[str, Any]]:
        claim_id = uuid.uuid4()
        async with self.db.tenant(tenant, actor="dispatcher",
                                      pipeline=False) as conn:
            claimed = await alert_store.claim(conn, tenant=tenant, claim_id=claim_id,
                                              lease=self.lease, limit=limit)
            if not claimed or tenant == system_alerts.SYSTEM_TENANT:
                secrets: dict[UUID, tuple[bytes, bool]] = {}
            else:
                secrets = await alert_store.rule_secrets(
                    conn, tenant=tenant, ids=list({c["rule_id"] for c in claimed}))
        for row in claimed:
            row["claim"] = claim_id
            row["sealed"] = secrets.get(row["rule_id"])
        return claimed

    def _configs(self, tenant: str, row: dict[str, Any]) -> tuple[dict[str, Any] | None,
                                                                   dict[str, str] | None]:
        """(the channel's full configuration, the masked view of the rule's fallback when
        this delivery may still hand over to it)."""
        if tenant == system_alerts.SYSTEM_TENANT:
            return dict(system_alerts.channels(self.settings, "critical")).get(row["channel_no"]), None
        if row["sealed"] is None:
            return None, None
        sealed, _ = row["sealed"]
        opened = self.vault.open(sealed, context=alert_secrets.rule_context(tenant, row["rule_id"]))
        fallback = opened.get("fallback")
        if row["channel_no"] == FALLBACK:
            return fallback, None
        channels = opened["channels"]
        config = channels[row["channel_no"]] if row["channel_no"] < len(channels) else None
        return config, alert_secrets.view(fallback) if fallback else None

    async def deliver(self, tenant: str, row: dict[str, Any]) -> None:
        config: dict[str, Any] | None = None
        fallback: dict[str, str] | None = None
        outcome = Outcome(False, error="channel no longer configured", permanent=True)
        try:
            config, fallback = self._configs(tenant, row)
        except alert_secrets.SecretsUnreadable as exc:
            outcome = Outcome(False, error=f"channel secrets unreadable: {exc}", permanent=True)
        if config is not None:
            message = Message(
                id=str(row["notification_id"]), delivery_id=str(row["id"]), tenant=tenant,
                rule_id=str(row["rule_id"]), rule_name=row["rule_name"],
                dedup_key=row["dedup_key"], kind=row["kind"], level=row["level"],
                summary=row["summary"], matches=int(row["matches"]),
                window_start=rfc3339(row["window_start"]),
                window_end=rfc3339(row["window_end"]), details=row["details"])
            try:
                outcome = await alert_channels.send(self.client, self.settings, config, message)
            except Exception as exc:  # a bug in a channel must not kill the dispatcher
                outcome = Outcome(False, error=f"send failed: {exc.__class__.__name__}")
        await self.record(tenant, row, outcome, fallback)

    async def record(self, tenant: str, row: dict[str, Any], outcome: Outcome,
                     fallback: dict[str, str] | None) -> None:
        settings = self.settings
        where = (f"tenant={tenant} rule={row['rule_id']} channel={row['channel_type']} "
                 f"target={row['target']} attempt={row['attempts']}")
        async with self.db.tenant(tenant, actor="dispatcher") as conn:
            if outcome.ok:
                await alert_store.finish(conn, tenant=tenant, delivery_id=row["id"],
                                         claim_id=row["claim"], status="delivered",
                                         last_status=outcome.status, last_error=None)
                log.info("alert delivered: %s dedup=%s", where, row["dedup_key"])
                return
            exhausted = outcome.permanent or row["attempts"] >= settings.alert_max_attempts
            if not exhausted:
                delay = alert_channels.backoff(
                    row["attempts"], base=settings.alert_retry_base_seconds,
                    cap=settings.alert_retry_max_seconds, retry_after=outcome.retry_after)
                await alert_store.finish(conn, tenant=tenant, delivery_id=row["id"],
                                         claim_id=row["claim"], status="pending",
                                         last_status=outcome.status, last_error=outcome.error,
                                         delay=delay)
                log.warning("alert delivery failed (%s), retry in %.1fs: %s", outcome.error,
                            delay, where)
                return
            if not await alert_store.finish(conn, tenant=tenant, delivery_id=row["id"],
                                            claim_id=row["claim"],
                                            status="failed" if fallback else "dead",
                                            last_status=outcome.status,
                                            last_error=outcome.error):
                return  # our lease ran out and another dispatcher holds it now
            if fallback is None:
                log.error("alert delivery dead-lettered (%s): %s", outcome.error, where)
                return
            # once per notification, however many of its channels give up
            await alert_store.insert_delivery(conn, tenant=tenant, row={
                "id": uuid.uuid4(), "notification_id": row["notification_id"],
                "rule_id": row["rule_id"], "channel_no": FALLBACK,
                "channel_type": fallback["type"], "target": fallback["target"]})
            log.warning("alert channel gave up (%s), handed to the fallback: %s",
                        outcome.error, where)
