"""Idempotency records: claim, read, take over, release; completed by the ingest write."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from psycopg.rows import dict_row

from app.storage.db import Connection
from app.storage.queries import q


async def claim(conn: Connection, *, tenant: str, key: str, fingerprint: str) -> bool:
    cur = await conn.execute(q("claim_idempotency_key"),
                             {"tenant": tenant, "key": key, "fingerprint": fingerprint})
    return await cur.fetchone() is not None


# A stored answer keeps the status and Location columns in the form every version has
# written and read (201, written by qcc_ingest_write, and /reports/{id}), so a rollback
# still replays what this one stored; above storage the answer is its body and the report
# it created.
_REPORT_PATH = "/reports/"


@dataclass(frozen=True, slots=True)
class Completion:
    """A key's answer, stored by the ingest write in the transaction of the reports it
    describes (reports.write_ingest)."""

    key: str
    body: bytes
    report_id: str | None

    @property
    def location(self) -> str | None:
        return _REPORT_PATH + self.report_id if self.report_id else None


async def get(conn: Connection, *, tenant: str, key: str) -> dict[str, Any] | None:
    """fingerprint, state, created_at, response_body and report_id (None for a batch)."""
    async with conn.cursor(row_factory=dict_row) as cur:
        await cur.execute(q("get_idempotency_key"), {"tenant": tenant, "key": key})
        record = await cur.fetchone()
    if record is not None:
        location = record.pop("location")
        record["report_id"] = location.removeprefix(_REPORT_PATH) if location else None
    return record


async def reclaim(conn: Connection, *, tenant: str, key: str, fingerprint: str,
                  seen_created_at: datetime) -> bool:
    cur = await conn.execute(q("reclaim_idempotency_key"), {
        "tenant": tenant, "key": key, "fingerprint": fingerprint,
        "seen_created_at": seen_created_at,
    })
    return await cur.fetchone() is not None


async def release(conn: Connection, *, tenant: str, key: str) -> None:
    await conn.execute(q("release_idempotency_key"), {"tenant": tenant, "key": key})


async def prune(conn: Connection, *, older_than: datetime) -> int:
    cur = await conn.execute(q("prune_idempotency_keys"), {"older_than": older_than})
    row = await cur.fetchone()
    return int(row[0]) if row else 0
