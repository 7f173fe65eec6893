"""Audit log reads (entries are written by database triggers, never from Python)."""

from __future__ import annotations

from typing import Any

from psycopg.rows import dict_row

from app.storage.db import Connection
from app.storage.queries import q


async def list_page(conn: Connection, *, tenant: str, params: dict[str, Any]) -> list[dict[str, Any]]:
    async with conn.cursor(row_factory=dict_row) as cur:
        await cur.execute(q("list_audit"), {"tenant": tenant, **params})
        return await cur.fetchall()
