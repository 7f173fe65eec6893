"""Alert delivery: outbox windows -> notifications -> one delivery per channel.

The work runs as jobs on the queue (procrastinate; app/worker.py declares the tasks), so
the queue's own guarantees do what a hand-written claim loop used to: each job runs in
one worker, a worker that dies mid-job has its job retried, retries wait on the queue.

- `announce` (a periodic job, every second): turns due windows into notifications — a
  window's first match at once, the "+N more" summary once the window has closed —
  locking them FOR UPDATE SKIP LOCKED, and writes each notification with one delivery
  row per channel of its rule and, in that same transaction, one delivery job per row.
- `deliver` (one job per delivery row): one attempt on one channel. On a retryable
  failure it records the wait (exponential, jittered, at least the receiver's
  Retry-After) and raises `DeliveryFailed`, which the task's retry strategy turns into
  "run again then"; only that channel is retried. After ALERT_MAX_ATTEMPTS, or at once
  on a permanent failure (a non-retryable 4xx, an SSRF refusal), the notification goes
  to the rule's fallback channel (a new delivery and job), and a channel with no
  fallback left is dead-lettered (GET /notifications?status=dead).

The tenant ':system' (the service's own alerts, system_alerts) is an ordinary tenant
here: its rules and channels are rows like any tenant's.
"""

from __future__ import annotations

import logging
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import UUID

import httpx

from app.config import Settings
from app.services.alerts import channel_secrets, channels, ssrf_guard
from app.services.alerts.channels import Message, Outcome
from app.services.canonical import rfc3339
from app.storage import alerts as alert_store
from app.storage.db import Database

log = logging.getLogger("qc_collector.alerts")

# a closed window is summarised this long after its end, so reports committed right at
# the boundary are counted in it
CLOSE_GRACE_SECONDS = 2.0
WINDOWS_PER_ROUND = 200
FALLBACK = -1
KEEP_LOG_DAYS = 30  # the delivery log (GET /notifications) keeps this much
LEVELS = {"block": "critical", "warn": "warning", "info": "info"}


class DeliveryFailed(Exception):
    """This attempt failed and the channel is retried after `delay` seconds (already
    recorded on the delivery row, which GET /notifications shows)."""

    def __init__(self, delay: float, error: str | None) -> None:
        super().__init__(f"{error}; retry in {delay:.1f}s")
        self.delay = delay


def _first_summary(rule_name: str, report: dict[str, Any]) -> str:
    return (f"{rule_name}: {report.get('severity')} report ({report.get('status')}) from "
            f"{report.get('source')} ({report.get('subject')})")[:1000]


def plan_notification(window: dict[str, Any], rule_name: str) -> tuple[dict[str, Any], int]:
    """The notification a due window gets now, and the window's new announced count.
    A window raised by a check carries its own level and facts; one of report matches
    takes its level from the first report's severity."""
    first = window["announced"] == 0
    count = 1 if first else window["matched"] - window["announced"]
    facts = window["first_match"]
    raised = window["level"] is not None
    level = window["level"] or LEVELS.get(facts.get("severity", ""), "warning")
    if first:
        summary = rule_name if raised else _first_summary(rule_name, facts)
        details: dict[str, Any] = ({"facts": facts.get("facts", {}), "check": facts.get("check")}
                                   if raised else {"report": facts})
    else:
        what = "time(s)" if raised else "matching report(s)"
        summary = (f"{rule_name}: +{count} more {what} between "
                   f"{rfc3339(window['window_start'])} and {rfc3339(window['window_end'])}")
        details = {"matches_in_window": window["matched"]}
    row = {"id": uuid.uuid4(), "rule_id": window["rule_id"], "rule_name": rule_name,
           "dedup_key": window["dedup_key"], "kind": "first" if first else "summary",
           "level": level, "summary": summary[:1000], "matches": count,
           "window_start": window["window_start"], "window_end": window["window_end"],
           "details": details}
    return row, (1 if first else window["matched"])


# -- windows -> notifications ---------------------------------------------------------


async def announce(*, db: Database) -> int:
    """One pass over every tenant with due windows; returns the notifications made."""
    async with db.system() as conn:
        tenants = await alert_store.tenants_with_work(conn, grace=CLOSE_GRACE_SECONDS)
    made = 0
    for tenant in tenants:
        made += await _announce_tenant(db, tenant)
    return made


async def _announce_tenant(db: Database, tenant: str) -> int:
    # one transaction and nothing outside it: a deadlock's victim simply runs again
    return await db.idempotent(lambda: _announce(db, tenant))


async def _announce(db: Database, tenant: str) -> int:
    async with db.tenant(tenant, actor="dispatcher", pipeline=False) as conn:
        windows = await alert_store.lock_due_windows(
            conn, tenant=tenant, grace=CLOSE_GRACE_SECONDS, limit=WINDOWS_PER_ROUND)
        if not windows:
            return 0
        rules = await alert_store.active_rules(
            conn, tenant=tenant, ids=list({w["rule_id"] for w in windows}))
        announced = []
        made = 0
        for window in windows:
            rule = rules.get(window["rule_id"])
            if rule is None or not rule["channels"]:  # deleted meanwhile: nothing to send
                announced.append((window["rule_id"], window["window_start"], window["matched"]))
                continue
            notification, count = plan_notification(window, rule["name"])
            announced.append((window["rule_id"], window["window_start"], count))
            await alert_store.insert_notification(conn, tenant=tenant, row=notification)
            for channel_no, view in enumerate(rule["channels"]):
                await alert_store.add_delivery(conn, tenant=tenant, row={
                    "id": uuid.uuid4(), "notification_id": notification["id"],
                    "rule_id": window["rule_id"], "channel_no": channel_no,
                    "channel_type": view["type"], "target": view["target"]})
            made += 1
        await alert_store.set_announced(conn, tenant=tenant, windows=announced)
    return made


# -- one delivery attempt ---------------------------------------------------------------


def client(settings: Settings) -> httpx.AsyncClient:
    return ssrf_guard.client(allow_private=settings.alerts_allow_private_targets,
                             timeout=settings.alert_send_timeout)


async def deliver(*, db: Database, settings: Settings, http: httpx.AsyncClient, tenant: str,
                  delivery_id: UUID) -> None:
    """One attempt of one delivery (its job). Raises DeliveryFailed when it is to be
    retried; returns when it is settled (delivered, handed over, dead, or already so)."""
    row = await db.idempotent(lambda: _start(db, tenant, delivery_id))
    if row is None:
        return  # settled meanwhile (cancelled with its rule, or already delivered)
    config: dict[str, Any] | None = None
    fallback: dict[str, str] | None = None
    outcome = Outcome(False, error="channel no longer configured", permanent=True)
    try:
        config, fallback = _configs(settings, tenant, row)
    except channel_secrets.SecretsUnreadable as exc:
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
            outcome = await channels.send(http, settings, config, message)
        except Exception as exc:  # a bug in a channel is a failed attempt, not a lost one
            outcome = Outcome(False, error=f"send failed: {exc.__class__.__name__}")
    delay = await db.idempotent(lambda: _record(db, settings, tenant, row, outcome, fallback))
    if delay is not None:
        raise DeliveryFailed(delay, outcome.error)


async def _start(db: Database, tenant: str, delivery_id: UUID) -> dict[str, Any] | None:
    async with db.tenant(tenant, actor="dispatcher", pipeline=False) as conn:
        row = await alert_store.start_delivery(conn, tenant=tenant, delivery_id=delivery_id)
        if row is not None:
            secrets = await alert_store.rule_secrets(conn, tenant=tenant, ids=[row["rule_id"]])
            row["sealed"] = secrets.get(row["rule_id"])
    return row


def _configs(settings: Settings, tenant: str,
             row: dict[str, Any]) -> tuple[dict[str, Any] | None, dict[str, str] | None]:
    """(the channel's full configuration, the masked view of the rule's fallback when
    this delivery may still hand over to it)."""
    if row["sealed"] is None:
        return None, None
    sealed, _ = row["sealed"]
    opened = channel_secrets.vault(settings).open(
        sealed, context=channel_secrets.rule_context(tenant, row["rule_id"]))
    fallback = opened.get("fallback")
    if row["channel_no"] == FALLBACK:
        return fallback, None
    channels = opened["channels"]
    config = channels[row["channel_no"]] if row["channel_no"] < len(channels) else None
    return config, channel_secrets.view(fallback) if fallback else None


async def _record(db: Database, settings: Settings, tenant: str, row: dict[str, Any],
                  outcome: Outcome, fallback: dict[str, str] | None) -> float | None:
    """Records the attempt; the delay before the retry, or None when settled."""
    where = (f"tenant={tenant} rule={row['rule_id']} channel={row['channel_type']} "
             f"target={row['target']} attempt={row['attempts']}")
    async with db.tenant(tenant, actor="dispatcher", pipeline=False) as conn:
        if outcome.ok:
            await alert_store.record_delivery(conn, tenant=tenant, delivery_id=row["id"],
                                              status="delivered", last_status=outcome.status,
                                              last_error=None)
            log.info("alert delivered: %s dedup=%s", where, row["dedup_key"])
            return None
        exhausted = outcome.permanent or row["attempts"] >= settings.alert_max_attempts
        if not exhausted:
            delay = channels.backoff(
                row["attempts"], base=settings.alert_retry_base_seconds,
                cap=settings.alert_retry_max_seconds, retry_after=outcome.retry_after)
            await alert_store.record_delivery(conn, tenant=tenant, delivery_id=row["id"],
                                              status="pending", last_status=outcome.status,
                                              last_error=outcome.error, delay=delay)
            log.warning("alert delivery failed (%s), retry in %.1fs: %s", outcome.error,
                        delay, where)
            return delay
        if not await alert_store.record_delivery(conn, tenant=tenant, delivery_id=row["id"],
                                                 status="failed" if fallback else "dead",
                                                 last_status=outcome.status,
                                                 last_error=outcome.error):
            return None  # settled meanwhile
        if fallback is None:
            log.error("alert delivery dead-lettered (%s): %s", outcome.error, where)
            return None
        # once per notification, however many of its channels give up
        await alert_store.add_delivery(conn, tenant=tenant, row={
            "id": uuid.uuid4(), "notification_id": row["notification_id"],
            "rule_id": row["rule_id"], "channel_no": FALLBACK,
            "channel_type": fallback["type"], "target": fallback["target"]})
        log.warning("alert channel gave up (%s), handed to the fallback: %s",
                    outcome.error, where)
        return None


async def give_up(*, db: Database, tenant: str, delivery_id: UUID, reason: str) -> None:
    """The job's last attempt failed for another reason than the channel (the database
    kept failing it): the delivery must not stay 'sending' for ever."""
    async with db.tenant(tenant, actor="dispatcher", pipeline=False) as conn:
        if await alert_store.record_delivery(conn, tenant=tenant, delivery_id=delivery_id,
                                             status="dead", last_status=None,
                                             last_error=reason):
            log.error("alert delivery dead-lettered (%s): tenant=%s delivery=%s", reason,
                      tenant, delivery_id)


async def prune(*, db: Database) -> int:
    async with db.system() as conn:
        gone = await alert_store.prune(
            conn, older_than=datetime.now(UTC) - timedelta(days=KEEP_LOG_DAYS))
    if gone:
        log.info("pruned %d old alert windows and notifications", gone)
    return gone
