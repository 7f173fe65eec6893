"""Alert rows: rules, the outbox windows, notifications and per-channel deliveries.

Every call takes the tenant and runs in the caller's (RLS-scoped) transaction; the only
cross-tenant reads are the definer functions behind tenants_with_work, dead_since and
prune. Each delivery row has one job on the queue (procrastinate), deferred with it.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any
from uuid import UUID

from psycopg.rows import dict_row
from psycopg.types.json import Jsonb

from app.storage.db import Connection
from app.storage.queries import q

ALERT_QUEUE = "alerts"
DELIVER_TASK = "alerts.deliver"


async def enqueue_system(conn: Connection, *, tenant: str, rule_id: UUID, level: str,
                         facts: dict[str, Any], window: int) -> None:
    await conn.execute(q("enqueue_system_alert"), {
        "tenant": tenant, "rule_id": rule_id, "level": level, "facts": Jsonb(facts),
        "window": window})


async def tenants_with_work(conn: Connection, *, grace: float) -> list[str]:
    cur = await conn.execute(q("alert_tenants_with_work"), {"grace": grace})
    return [row[0] for row in await cur.fetchall()]


async def lock_due_windows(conn: Connection, *, tenant: str, grace: float,
                           limit: int) -> list[dict[str, Any]]:
    async with conn.cursor(row_factory=dict_row) as cur:
        await cur.execute(q("lock_due_alert_windows"), {"tenant": tenant, "grace": grace,
                                                        "limit": limit})
        return await cur.fetchall()


async def set_announced(conn: Connection, *, tenant: str,
                        windows: Sequence[tuple[UUID, datetime, int]]) -> None:
    await conn.execute(q("set_alert_window_announced"), {
        "tenant": tenant, "rule_ids": [w[0] for w in windows],
        "starts": [w[1] for w in windows], "announced": [w[2] for w in windows]})


async def active_rules(conn: Connection, *, tenant: str, ids: Sequence[UUID]) -> dict[UUID, dict[str, Any]]:
    async with conn.cursor(row_factory=dict_row) as cur:
        await cur.execute(q("active_alert_rules_by_id"), {"tenant": tenant, "ids": list(ids)})
        return {row["id"]: row for row in await cur.fetchall()}


async def insert_notification(conn: Connection, *, tenant: str, row: dict[str, Any]) -> None:
    await conn.execute(q("insert_alert_notification"),
                       {"tenant": tenant, **row, "details": Jsonb(row["details"])})


async def add_delivery(conn: Connection, *, tenant: str, row: dict[str, Any]) -> bool:
    """A delivery row and its job, in the caller's transaction: the job exists if and only
    if the row was committed. A channel that already has this notification gets nothing
    (False)."""
    cur = await conn.execute(q("insert_alert_delivery"), {"tenant": tenant, **row})
    if await cur.fetchone() is None:
        return False
    await conn.execute(q("defer_job"), {
        "queue": ALERT_QUEUE, "task": DELIVER_TASK, "lock": None,
        "args": Jsonb({"tenant": tenant, "delivery_id": str(row["id"])})})
    return True


async def start_delivery(conn: Connection, *, tenant: str,
                         delivery_id: UUID) -> dict[str, Any] | None:
    async with conn.cursor(row_factory=dict_row) as cur:
        await cur.execute(q("start_alert_delivery"), {"tenant": tenant, "id": delivery_id})
        return await cur.fetchone()


async def rule_secrets(conn: Connection, *, tenant: str,
                       ids: Sequence[UUID]) -> dict[UUID, tuple[bytes, bool]]:
    cur = await conn.execute(q("alert_rule_secrets"), {"tenant": tenant, "ids": list(ids)})
    return {row[0]: (bytes(row[1]), bool(row[2])) for row in await cur.fetchall()}


async def sealed_rules(conn: Connection, *, tenant: str) -> list[tuple[UUID, bytes]]:
    """Every rule's sealed secrets, locked for re-sealing (deleted rules included)."""
    cur = await conn.execute(q("sealed_alert_rules"), {"tenant": tenant})
    return [(row[0], bytes(row[1])) for row in await cur.fetchall()]


async def reseal_rule(conn: Connection, *, tenant: str, rule_id: UUID, sealed: bytes) -> None:
    await conn.execute(q("reseal_alert_rule"), {"tenant": tenant, "id": rule_id,
                                                "secrets": sealed})


async def audit_reseal(conn: Connection, *, tenant: str, count: int, key_id: str) -> None:
    await conn.execute(q("audit_alert_reseal"), {
        "tenant": tenant, "details": Jsonb({"rules": count, "key_id": key_id})})


async def record_delivery(conn: Connection, *, tenant: str, delivery_id: UUID, status: str,
                          last_status: int | None, last_error: str | None,
                          delay: float = 0.0) -> bool:
    cur = await conn.execute(q("record_alert_delivery"), {
        "tenant": tenant, "id": delivery_id, "status": status,
        "last_status": last_status, "last_error": last_error, "delay": delay})
    return await cur.fetchone() is not None


async def sync_system_rule(conn: Connection, *, tenant: str, rule_id: UUID, name: str,
                           channels: list[dict[str, str]], secrets: bytes) -> None:
    await conn.execute(q("sync_system_alert_rule"), {
        "tenant": tenant, "id": rule_id, "name": name, "channels": Jsonb(channels),
        "secrets": secrets})


async def lock_tenant_rules(conn: Connection, *, tenant: str) -> None:
    await conn.execute(q("lock_tenant_alert_rules"), {"tenant": tenant})


async def count_active_rules(conn: Connection, *, tenant: str) -> int:
    cur = await conn.execute(q("count_active_alert_rules"), {"tenant": tenant})
    row = await cur.fetchone()
    return int(row[0]) if row else 0


async def create_rule(conn: Connection, *, tenant: str, rule_id: UUID, name: str,
                      match: dict[str, Any], channels: list[dict[str, str]],
                      fallback: dict[str, str] | None, secrets: bytes,
                      created_by: UUID | None) -> dict[str, Any]:
    async with conn.cursor(row_factory=dict_row) as cur:
        await cur.execute(q("insert_alert_rule"), {
            "tenant": tenant, "id": rule_id, "name": name,
            "severity": match.get("severity"), "status": match.get("status"),
            "source": match.get("source"), "subject": match.get("subject"),
            "labels": Jsonb(match.get("labels") or {}), "channels": Jsonb(channels),
            "fallback": Jsonb(fallback) if fallback is not None else None,
            "secrets": secrets, "created_by": created_by})
        row = await cur.fetchone()
        assert row is not None
        return row


async def list_rules(conn: Connection, *, tenant: str) -> list[dict[str, Any]]:
    async with conn.cursor(row_factory=dict_row) as cur:
        await cur.execute(q("list_alert_rules"), {"tenant": tenant})
        return await cur.fetchall()


async def delete_rule(conn: Connection, *, tenant: str, rule_id: UUID) -> bool:
    cur = await conn.execute(q("delete_alert_rule"), {"tenant": tenant, "id": rule_id})
    if await cur.fetchone() is None:
        return False
    await conn.execute(q("cancel_alert_rule_work"), {"tenant": tenant, "id": rule_id})
    return True


async def list_notifications(conn: Connection, *, tenant: str,
                             params: dict[str, Any]) -> list[dict[str, Any]]:
    async with conn.cursor(row_factory=dict_row) as cur:
        await cur.execute(q("list_alert_notifications"), {"tenant": tenant, **params})
        return await cur.fetchall()


async def dead_since(conn: Connection, *, since: datetime) -> int:
    cur = await conn.execute(q("alert_dead_since"), {"since": since})
    row = await cur.fetchone()
    return int(row[0]) if row and row[0] is not None else 0


async def prune(conn: Connection, *, older_than: datetime) -> int:
    cur = await conn.execute(q("prune_alerts"), {"older_than": older_than})
    row = await cur.fetchone()
    return int(row[0]) if row and row[0] is not None else 0


async def database_size(conn: Connection) -> int:
    cur = await conn.execute(q("database_size"))
    row = await cur.fetchone()
    return int(row[0]) if row else 0
