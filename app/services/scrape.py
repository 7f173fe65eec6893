"""What /metrics reads from PostgreSQL: service-wide counts in one statement."""

from __future__ import annotations

from typing import Any

from app.storage import metrics as metrics_storage
from app.storage.db import connection


async def database_snapshot(*, pool: Any) -> dict[str, Any]:
    async with connection(pool) as conn:
        return await metrics_storage.snapshot(conn)
