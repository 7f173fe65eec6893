"""What /metrics reads from PostgreSQL: service-wide counts in one statement."""

from __future__ import annotations

from typing import Any

from app.storage import metrics as metrics_storage
from app.storage.db import Database


async def database_snapshot(*, db: Database) -> dict[str, Any]:
    async with db.system() as conn:
        return await metrics_storage.snapshot(conn)
