"""Retention plans, candidate digests, batched deletes and the run record."""

from __future__ import annotations

from datetime import datetime
from typing import Any
from uuid import UUID

from psycopg.rows import dict_row
from psycopg.types.json import Jsonb

from app.storage.db import Connection
from app.storage.queries import q


async def tenants(conn: Connection) -> list[str]:
    cur = await conn.execute(q("tenants"))
    return [r[0] for r in await cur.fetchall()]


async def candidates(conn: Connection, *, tenant: str, cutoff: datetime,
                     include_signed: bool) -> dict[str, Any]:
    async with conn.cursor(row_factory=dict_row) as cur:
        await cur.execute(q("retention_candidates"), {
            "tenant": tenant, "cutoff": cutoff, "include_signed": include_signed})
        row = await cur.fetchone()
        assert row is not None
        return row


async def save_plan(conn: Connection, *, tenant: str, plan_hash: str, cutoff: datetime,
                    include_signed: bool, candidates: int, digest: str,
                    expires_at: datetime) -> None:
    await conn.execute(q("save_retention_plan"), {
        "tenant": tenant, "plan_hash": plan_hash, "cutoff": cutoff,
        "include_signed": include_signed, "candidates": candidates, "digest": digest,
        "expires_at": expires_at})


async def get_plan(conn: Connection, *, tenant: str, plan_hash: str) -> dict[str, Any] | None:
    async with conn.cursor(row_factory=dict_row) as cur:
        await cur.execute(q("get_retention_plan"), {"tenant": tenant, "plan_hash": plan_hash})
        return await cur.fetchone()


async def drop_plan(conn: Connection, *, tenant: str, plan_hash: str) -> None:
    await conn.execute(q("drop_retention_plan"), {"tenant": tenant, "plan_hash": plan_hash})


async def delete_batch(conn: Connection, *, tenant: str, cutoff: datetime, include_signed: bool,
                       limit: int) -> int:
    cur = await conn.execute(q("delete_retention_batch"), {
        "tenant": tenant, "cutoff": cutoff, "include_signed": include_signed, "limit": limit})
    row = await cur.fetchone()
    return int(row[0]) if row else 0


async def record_run(conn: Connection, *, tenant: str, run_id: UUID, plan_hash: str,
                     cutoff: datetime, include_signed: bool, deleted: int,
                     failures: list[dict[str, Any]], started_at: datetime) -> None:
    await conn.execute(q("insert_retention_run"), {
        "tenant": tenant, "id": run_id, "plan_hash": plan_hash, "cutoff": cutoff,
        "include_signed": include_signed, "deleted": deleted, "failures": Jsonb(failures),
        "started_at": started_at})
