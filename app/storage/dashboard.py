"""Dashboard aggregates: top failing sources/subjects, pass rates, the capped match count."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from psycopg.rows import dict_row

from app.storage.db import Connection
from app.storage.queries import composed, q
from app.storage.reports import REPORT_FILTERS, filter_sql

TOP_QUERIES = {"source": "dashboard_top_sources", "subject": "dashboard_top_subjects"}


async def top_failing(conn: Connection, *, tenant: str, by: str, since: datetime,
                      until: datetime, limit: int) -> list[dict[str, Any]]:
    async with conn.cursor(row_factory=dict_row) as cur:
        await cur.execute(q(TOP_QUERIES[by]), {"tenant": tenant, "since": since, "until": until,
                                               "limit": limit})
        return await cur.fetchall()


async def pass_rates(conn: Connection, *, tenant: str, since: datetime, until: datetime,
                     limit: int) -> list[dict[str, Any]]:
    async with conn.cursor(row_factory=dict_row) as cur:
        await cur.execute(q("dashboard_pass_rates"), {"tenant": tenant, "since": since,
                                                      "until": until, "limit": limit})
        return await cur.fetchall()


async def count_capped(conn: Connection, *, tenant: str, params: dict[str, Any],
                       cap: int) -> int:
    query = composed("count_reports_capped", filters=filter_sql(params, REPORT_FILTERS))
    cur = await conn.execute(query, {"tenant": tenant, **params, "cap_plus_one": cap + 1})
    row = await cur.fetchone()
    return int(row[0]) if row else 0
