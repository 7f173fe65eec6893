"""The worker's export job: stream the matching rows from a server-side cursor into the
ExportStore (CSV or NDJSON, gzip), then record the file; and the expiry of old files.

Only a complete file is committed and recorded as succeeded, so a worker killed mid-job
leaves nothing marked done — the job is retried and starts over.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import UUID

from app.config import Settings
from app.services.canonical import rfc3339
from app.services.exports.rules import filters_from
from app.services.exports.store import ExportDraft, ExportStore
from app.storage import exports as export_store
from app.storage.db import Database

# The CSV file's columns, in order: (header, stored column). The order lives here alone;
# the query selects exactly these columns (app/storage/exports.stream_rows).
CSV_COLUMNS = (("id", "id"), ("received_at", "received_at"), ("observed_at", "observed_at_raw"),
               ("source", "source"), ("subject", "subject"), ("run_id", "run_id"),
               ("status", "status"), ("severity", "severity"), ("pass", "count_pass"),
               ("warn", "count_warn"), ("fail", "count_fail"), ("labels", "labels"),
               ("content_sha256", "content_sha256"), ("signed", "signed"))
NDJSON_COLUMNS = ("canonical",)
_CSV_FORMAT: dict[str, Callable[[Any], Any]] = {
    "received_at": rfc3339,
    "run_id": lambda value: value or "",
    "signed": lambda value: "true" if value else "false",
}
_CSV_CELLS = tuple(_CSV_FORMAT.get(column, lambda value: value) for _, column in CSV_COLUMNS)


class TooManyRows(Exception):
    pass


# OWASP's CSV injection rule: a cell a spreadsheet would read as a formula (or whose
# leading tab/CR it would drop to reveal one) starts with a single quote instead.
FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def csv_cell(value: Any) -> Any:
    if isinstance(value, str) and value.startswith(FORMULA_START):
        return "'" + value
    return value


def _csv_lines(rows: list[tuple[Any, ...]]) -> bytes:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    # The minimal dialect quotes a field with "\n" but not one with a lone "\r", which
    # readers take for a line end: a row holding one is quoted throughout.
    quoted = csv.writer(out, lineterminator="\n", quoting=csv.QUOTE_ALL)
    for row in rows:
        cells = [csv_cell(cell(value)) for cell, value in zip(_CSV_CELLS, row, strict=True)]
        carriage = any(isinstance(c, str) and "\r" in c for c in cells)
        (quoted if carriage else writer).writerow(cells)
    return out.getvalue().encode()


async def run(*, db: Database, settings: Settings, store: ExportStore, tenant: str,
              export_id: UUID) -> None:
    """The worker's job: idempotent, so a retry after a crash simply starts over."""
    async with db.tenant(tenant) as conn:
        claimed = await export_store.start(conn, tenant=tenant, export_id=export_id)
    if claimed is None:
        return  # already finished (or failed) by an earlier attempt
    name = f"{export_id}.{claimed['format']}.gz"
    params = filters_from(claimed["filters"]).sql_params()
    params.update(since=claimed["since"], until=claimed["until"])
    failure = None
    draft: ExportDraft | None = None
    try:
        draft = store.begin(tenant, name)
        rows = await _write(db, tenant, params, claimed["format"], draft,
                            settings.export_max_rows)
        written = draft.commit()
    except TooManyRows:
        failure = (f"more than EXPORT_MAX_ROWS ({settings.export_max_rows}) rows match; "
                   "narrow the period or the filters")
    except OSError as exc:
        # the export storage is full or unwritable: retrying in seconds would not help;
        # the export fails now, with the reason, and may be asked for again
        failure = f"the export storage could not be written: {exc.strerror or exc}"
    except BaseException:
        if draft is not None:
            draft.discard()
        raise
    if failure is not None:
        if draft is not None:
            draft.discard()
        async with db.tenant(tenant) as conn:
            await export_store.fail(conn, tenant=tenant, export_id=export_id, error=failure)
        return
    async with db.tenant(tenant) as conn:
        await export_store.finish(conn, tenant=tenant, export_id=export_id, rows=rows,
                                  size=written.size, sha256=written.sha256, file_name=name)


async def _write(db: Database, tenant: str, params: dict[str, Any], fmt: str,
                 draft: ExportDraft, max_rows: int) -> int:
    rows = 0
    csv_out = fmt == "csv"
    if csv_out:
        draft.write((",".join(header for header, _ in CSV_COLUMNS) + "\n").encode())
    columns = tuple(column for _, column in CSV_COLUMNS) if csv_out else NDJSON_COLUMNS
    async with db.tenant(tenant, pipeline=False) as conn:
        async for batch in export_store.stream_rows(conn, tenant=tenant, columns=columns,
                                                    params=params):
            rows += len(batch)
            if rows > max_rows:
                raise TooManyRows()
            if csv_out:
                draft.write(_csv_lines(batch))
            else:
                draft.write(b"".join(bytes(r[0]) + b"\n" for r in batch))
    return rows


async def give_up(*, db: Database, tenant: str, export_id: UUID, reason: str) -> None:
    async with db.tenant(tenant) as conn:
        await export_store.fail(conn, tenant=tenant, export_id=export_id,
                                error=f"the export could not be written: {reason}")


async def expire_files(*, db: Database, settings: Settings, store: ExportStore,
                       now: datetime | None = None) -> int:
    older_than = (now or datetime.now(UTC)) - timedelta(seconds=settings.export_ttl)
    async with db.system() as conn:
        expired = await export_store.expire(conn, older_than=older_than)
    for tenant, _, file_name in expired:
        if file_name:
            store.remove(tenant, file_name)
    return len(expired)
