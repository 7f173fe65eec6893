"""Export rows, the job that runs them, and the server-side cursor the worker streams."""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from datetime import datetime
from typing import Any
from uuid import UUID

from psycopg import sql
from psycopg.rows import dict_row
from psycopg.types.json import Jsonb

from app.storage.db import Connection
from app.storage.queries import composed, q
from app.storage.reports import REPORT_FILTERS, filter_sql

EXPORT_QUEUE = "exports"
EXPORT_TASK = "export"


async def lock_tenant(conn: Connection, *, tenant: str) -> None:
    await conn.execute(q("lock_tenant_exports"), {"tenant": tenant})


async def find_active(conn: Connection, *, tenant: str, request_hash: str) -> dict[str, Any] | None:
    async with conn.cursor(row_factory=dict_row) as cur:
        await cur.execute(q("find_active_export"), {"tenant": tenant, "request_hash": request_hash})
        return await cur.fetchone()


async def count_active(conn: Connection, *, tenant: str) -> int:
    cur = await conn.execute(q("count_active_exports"), {"tenant": tenant})
    row = await cur.fetchone()
    return int(row[0]) if row else 0


async def create(conn: Connection, *, tenant: str, export_id: UUID, format: str,
                 since: datetime, until: datetime, filters: dict[str, Any], request_hash: str,
                 created_by: UUID | None) -> None:
    """The export row and its job, in the caller's transaction."""
    await conn.execute(q("insert_export"), {
        "tenant": tenant, "id": export_id, "format": format, "since": since, "until": until,
        "filters": Jsonb(filters), "request_hash": request_hash, "created_by": created_by})
    await conn.execute(q("defer_job"), {
        "queue": EXPORT_QUEUE, "task": EXPORT_TASK, "lock": f"export:{export_id}",
        "args": Jsonb({"tenant": tenant, "export_id": str(export_id)})})


async def get(conn: Connection, *, tenant: str, export_id: UUID) -> dict[str, Any] | None:
    async with conn.cursor(row_factory=dict_row) as cur:
        await cur.execute(q("get_export"), {"tenant": tenant, "id": export_id})
        return await cur.fetchone()


async def list_page(conn: Connection, *, tenant: str, limit: int,
                    after: tuple[datetime, UUID] | None) -> list[dict[str, Any]]:
    """Newest first; `limit` rows (the caller asks one more to know whether more follow)."""
    async with conn.cursor(row_factory=dict_row) as cur:
        await cur.execute(q("list_exports"), {
            "tenant": tenant, "limit": limit, "after_at": after[0] if after else None,
            "after_id": after[1] if after else None})
        return await cur.fetchall()


async def start(conn: Connection, *, tenant: str, export_id: UUID) -> dict[str, Any] | None:
    async with conn.cursor(row_factory=dict_row) as cur:
        await cur.execute(q("start_export"), {"tenant": tenant, "id": export_id})
        return await cur.fetchone()


async def finish(conn: Connection, *, tenant: str, export_id: UUID, rows: int, size: int,
                 sha256: str, file_name: str) -> None:
    await conn.execute(q("finish_export"), {"tenant": tenant, "id": export_id, "rows": rows,
                                            "bytes": size, "sha256": sha256,
                                            "file_name": file_name})


async def fail(conn: Connection, *, tenant: str, export_id: UUID, error: str) -> None:
    await conn.execute(q("fail_export"), {"tenant": tenant, "id": export_id, "error": error})


async def find(conn: Connection, *, export_id: UUID) -> dict[str, Any] | None:
    async with conn.cursor(row_factory=dict_row) as cur:
        await cur.execute(q("find_export"), {"id": export_id})
        return await cur.fetchone()


async def expire(conn: Connection, *, older_than: datetime) -> list[tuple[str, UUID, str | None]]:
    cur = await conn.execute(q("expire_exports"), {"older_than": older_than})
    return [(r[0], r[1], r[2]) for r in await cur.fetchall()]


# What an export may select of a report (labels as JSON text, as a file shows them).
EXPORTABLE = frozenset({"id", "received_at", "observed_at_raw", "source", "subject", "run_id",
                        "status", "severity", "count_pass", "count_warn", "count_fail",
                        "labels", "content_sha256", "signed", "canonical"})


async def stream_rows(conn: Connection, *, tenant: str, columns: Sequence[str],
                      params: dict[str, Any],
                      batch: int = 5000) -> AsyncIterator[list[tuple[Any, ...]]]:
    """Batches of rows, `columns` in the order asked, from a server-side (named) cursor:
    memory stays flat whatever the export size. The caller holds the transaction open
    around the iteration."""
    unknown = set(columns) - EXPORTABLE
    if unknown:
        raise ValueError(f"not an exportable column: {sorted(unknown)}")
    selected = sql.SQL(", ").join(
        sql.SQL("labels::text") if c == "labels" else sql.Identifier(c) for c in columns)
    async with conn.cursor(name="export_rows") as cur:
        query = composed("export_rows", columns=selected,
                         filters=filter_sql(params, REPORT_FILTERS[:5]))
        await cur.execute(query, {"tenant": tenant, **params})
        while rows := await cur.fetchmany(batch):
            yield rows
