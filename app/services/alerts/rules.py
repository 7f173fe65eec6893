"""Alert rules (create, list, delete) and the tenant's notification delivery log.

A rule's channel configurations are sealed (channel_secrets) in the same transaction that
stores the rule; what the API shows back is masked. Matching happens in SQL, in the
ingest transaction (storage.alerts.enqueue); delivery is the `delivery` module's, as jobs
on the worker's queue.
"""

from __future__ import annotations

import hashlib
import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from uuid import UUID

import orjson

from app.config import Settings
from app.errors import NotFound, Unprocessable
from app.services import cursors
from app.services.access.principal import Principal
from app.services.alerts import channel_secrets
from app.services.alerts.ssrf_guard import TargetRefused, check_url
from app.services.canonical import rfc3339
from app.services.versions import etag, matches
from app.storage import alerts as alert_store
from app.storage.db import Database
from generated.types import AlertRuleRequest

MAX_RULES = 100
LABEL_KEY_MAX = 64


def _refuse(pointer: str, detail: str) -> Unprocessable:
    return Unprocessable(f"{pointer}: {detail}", errors=[{"pointer": pointer, "detail": detail}])


def check_channel(channel: dict[str, Any], pointer: str, *, allow_private: bool) -> None:
    """Beyond the schema: the SSRF guard's static checks, no header injection."""
    if channel["type"] in ("slack", "webhook"):
        try:
            check_url(channel["url"], allow_private=allow_private)
        except TargetRefused as exc:
            raise _refuse(f"{pointer}/url", str(exc)) from None
    if channel["type"] == "email":
        for i, address in enumerate(channel["to"]):
            if any(c in address for c in "\r\n") or address.count("@") != 1:
                raise _refuse(f"{pointer}/to/{i}", "not a single email address")


@dataclass(frozen=True, slots=True)
class RuleView:
    etag: str
    items: list[dict[str, Any]] | None  # None: not modified


def _match_view(row: dict[str, Any]) -> dict[str, Any]:
    match: dict[str, Any] = {}
    for name in ("severity", "status", "source", "subject"):
        if row[f"match_{name}"] is not None:
            match[name] = list(row[f"match_{name}"])
    if row["match_labels"]:
        match["labels"] = row["match_labels"]
    return match


def _rule_view(row: dict[str, Any]) -> dict[str, Any]:
    return {"id": str(row["id"]), "name": row["name"], "match": _match_view(row),
            "channels": row["channels"], "fallback": row["fallback"],
            "created_by": str(row["created_by"]) if row["created_by"] else None,
            "created_at": rfc3339(row["created_at"])}


async def create_rule(*, db: Database, settings: Settings, principal: Principal,
                      request: AlertRuleRequest) -> dict[str, Any]:
    allow = settings.alerts_allow_private_targets
    channels: list[dict[str, Any]] = [dict(c) for c in request["channels"]]
    fallback: dict[str, Any] | None = dict(request["fallback"]) if "fallback" in request else None
    for i, channel in enumerate(channels):
        check_channel(channel, f"/channels/{i}", allow_private=allow)
    if fallback is not None:
        check_channel(fallback, "/fallback", allow_private=allow)
    match: dict[str, Any] = dict(request.get("match") or {})
    for key in (match.get("labels") or {}):
        if not 1 <= len(key) <= LABEL_KEY_MAX or "\x00" in key:  # jsonb refuses NUL
            raise _refuse("/match/labels",
                          f"label keys must be 1-{LABEL_KEY_MAX} characters without NUL")
    vault = channel_secrets.vault(settings)
    tenant, rule_id = principal.tenant, uuid.uuid4()
    sealed = vault.seal({"channels": channels, "fallback": fallback},
                        context=channel_secrets.rule_context(tenant, rule_id))
    async with db.tenant(tenant, actor_key=principal.key_id,
                                  pipeline=False) as conn:
        await alert_store.lock_tenant_rules(conn, tenant=tenant)
        if await alert_store.count_active_rules(conn, tenant=tenant) >= MAX_RULES:
            raise Unprocessable(f"a tenant may have at most {MAX_RULES} active alert rules",
                                limit=MAX_RULES)
        row = await alert_store.create_rule(
            conn, tenant=tenant, rule_id=rule_id, name=request["name"], match=match,
            channels=[channel_secrets.view(c) for c in channels],
            fallback=channel_secrets.view(fallback) if fallback is not None else None,
            secrets=sealed, created_by=principal.key_id)
    return _rule_view(row)


async def list_rules(*, db: Database, tenant: str, if_none_match: str | None) -> RuleView:
    async with db.tenant(tenant, read=True) as conn:
        rows = await alert_store.list_rules(conn, tenant=tenant)
    items = [_rule_view(r) for r in rows]
    tag = etag(tenant, 0, "alert-rules", hashlib.sha256(orjson.dumps(items)).hexdigest())
    return RuleView(tag, None if matches(if_none_match, tag) else items)


async def delete_rule(*, db: Database, principal: Principal, rule_id: UUID) -> None:
    async with db.tenant(principal.tenant, actor_key=principal.key_id) as conn:
        if not await alert_store.delete_rule(conn, tenant=principal.tenant, rule_id=rule_id):
            raise NotFound("no alert rule with this id in the tenant")


# -- the delivery log ---------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class NotificationPage:
    etag: str
    items: list[dict[str, Any]] | None  # None: not modified
    next_cursor: str | None


def encode_cursor(at: datetime, notification_id: UUID) -> str:
    return cursors.encode(at, notification_id)


def decode_cursor(cursor: str) -> tuple[datetime, UUID]:
    at, notification_id = cursors.decode(cursor)
    assert isinstance(notification_id, UUID)
    return at, notification_id


def _stamp(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, str):  # from jsonb: PostgreSQL's own text form
        value = datetime.fromisoformat(value)
    return rfc3339(value)


def _notification(row: dict[str, Any]) -> dict[str, Any]:
    deliveries = [{**d, "next_attempt_at": _stamp(d["next_attempt_at"]),
                   "delivered_at": _stamp(d["delivered_at"])} for d in row["deliveries"]]
    return {"id": str(row["id"]), "rule_id": str(row["rule_id"]), "rule_name": row["rule_name"],
            "dedup_key": row["dedup_key"], "kind": row["kind"], "level": row["level"],
            "summary": row["summary"], "matches": row["matches"],
            "window_start": rfc3339(row["window_start"]),
            "window_end": rfc3339(row["window_end"]), "created_at": rfc3339(row["created_at"]),
            "status": row["status"], "attempts": int(row["attempts"]),
            "last_error": row["last_error"], "deliveries": deliveries}


async def list_notifications(*, db: Database, tenant: str, status: str | None,
                             rule_id: UUID | None, limit: int, cursor: str | None,
                             if_none_match: str | None) -> NotificationPage:
    after = decode_cursor(cursor) if cursor else None
    params = {"status": status, "rule_id": rule_id, "limit": limit + 1,
              "after_at": after[0] if after else None, "after_id": after[1] if after else None}
    async with db.tenant(tenant, read=True) as conn:
        rows = await alert_store.list_notifications(conn, tenant=tenant, params=params)
    more = len(rows) > limit
    rows = rows[:limit]
    items = [_notification(r) for r in rows]
    next_cursor = encode_cursor(rows[-1]["created_at"], rows[-1]["id"]) if more else None
    # the worker changes deliveries outside the tenant's version: the tag is the body's own
    tag = etag(tenant, 0, "notifications",
               hashlib.sha256(orjson.dumps([items, next_cursor])).hexdigest())
    return NotificationPage(tag, None if matches(if_none_match, tag) else items, next_cursor)
