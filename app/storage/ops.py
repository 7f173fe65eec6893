"""Ops metrics: the accumulator's flush and the tenant's aggregates (queries.sql)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from psycopg.types.json import Jsonb

from app.storage.db import Connection
from app.storage.queries import q


async def record(conn: Connection, *, requests: list[dict[str, Any]],
                 rejections: list[dict[str, Any]]) -> None:
    await conn.execute(q("record_ops"), {"requests": Jsonb(requests),
                                         "rejections": Jsonb(rejections)})


async def metrics(conn: Connection, *, tenant: str, now: datetime, window_start: datetime,
                  latency_slots: int) -> dict[str, Any]:
    cur = await conn.execute(q("ops_metrics"), {"tenant": tenant, "now": now,
                                                "window_start": window_start,
                                                "latency_slots": latency_slots})
    row = await cur.fetchone()
    return row[0] if row else {}
