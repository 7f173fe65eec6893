"""Console (BFF) sessions: stored by the sha256 of the cookie's secret (queries.sql)."""

from __future__ import annotations

from datetime import datetime
from typing import Any
from uuid import UUID

from app.storage.db import Connection
from app.storage.queries import q


async def insert(conn: Connection, *, secret_sha256: bytes, tenant: str, key_id: UUID,
                 role: str, expires_at: datetime) -> datetime:
    cur = await conn.execute(q("insert_console_session"), {
        "secret_sha256": secret_sha256, "tenant": tenant, "key_id": key_id, "role": role,
        "expires_at": expires_at})
    row = await cur.fetchone()
    assert row is not None
    return row[0]


async def lookup(conn: Connection, *, secret_sha256: bytes,
                 idle_seconds: int) -> tuple[Any, ...] | None:
    cur = await conn.execute(q("lookup_console_session"), {
        "secret_sha256": secret_sha256, "idle_seconds": idle_seconds})
    return await cur.fetchone()


async def end(conn: Connection, *, secret_sha256: bytes) -> bool:
    cur = await conn.execute(q("end_console_session"), {"secret_sha256": secret_sha256})
    row = await cur.fetchone()
    return bool(row and row[0])
