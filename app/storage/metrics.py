"""The PostgreSQL side of /metrics: one statement (queries.sql `metrics_snapshot`)."""

from __future__ import annotations

from typing import Any

from app.storage.db import Connection
from app.storage.queries import q


async def snapshot(conn: Connection) -> dict[str, Any]:
    cur = await conn.execute(q("metrics_snapshot"))
    row = await cur.fetchone()
    return row[0] if row else {}
