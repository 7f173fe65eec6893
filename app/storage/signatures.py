"""Report signatures: the stored DSSE envelope bytes of each signed report."""

from __future__ import annotations

from datetime import datetime
from typing import Any
from uuid import UUID

from psycopg.rows import dict_row

from app.storage.db import Connection
from app.storage.queries import q


async def get(conn: Connection, *, tenant: str, report_id: UUID) -> dict[str, Any] | None:
    async with conn.cursor(row_factory=dict_row) as cur:
        await cur.execute(q("get_signature"), {"tenant": tenant, "id": report_id})
        return await cur.fetchone()


async def insert(conn: Connection, *, tenant: str, report_id: UUID, signing_key_id: str,
                 signer_key_id: UUID, signer_role: str, signed_at: datetime,
                 envelope: bytes) -> bool:
    cur = await conn.execute(q("insert_signature"), {
        "tenant": tenant, "id": report_id, "signing_key_id": signing_key_id,
        "signer_key_id": signer_key_id, "signer_role": signer_role, "signed_at": signed_at,
        "envelope": envelope,
    })
    return await cur.fetchone() is not None


async def mark_report_signed(conn: Connection, *, tenant: str, report_id: UUID) -> None:
    await conn.execute(q("mark_signed"), {"tenant": tenant, "id": report_id})
