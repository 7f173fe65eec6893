"""Report rows: the ingest write, keyset pages, timeline aggregates, versions."""

from __future__ import annotations

import functools
from collections.abc import Sequence
from dataclasses import dataclass, fields
from datetime import datetime
from typing import Any
from uuid import UUID

import orjson
from psycopg import sql

from app.storage.db import Connection, Read
from app.storage.idempotency import Completion
from app.storage.queries import composed, q

SORT_COLUMNS = {"received_at": "received_at", "observed_at": "observed_at"}
GROUP_COLUMNS = {"severity": "severity", "status": "status", "source": "source"}
REPORT_FILTERS = ("severity", "status", "source", "subject", "labels", "since", "until")
# The hourly rollups, narrowest first, with their dimensions: a timeline reads the first
# that holds its grouping and every filter present (migrations 0001 and 0012; the
# narrow one is derived from the wide one by a trigger), else the reports themselves.
ROLLUPS = (("report_rollup_severity_hourly", ("severity",)),
           ("report_rollup_hourly", ("severity", "status", "source")))


SINGLE_VALUE = ("severity", "status", "source", "subject")


def filter_fragments(params: dict[str, Any], names: Sequence[str]) -> tuple[str, ...]:
    """The names of the filter fragments for the filters present (None = absent; an empty
    list matches nothing). A one-value list becomes plain equality (its `<name>_one`
    parameter is added to params)."""
    parts = []
    for name in names:
        value = params.get(name)
        if value is None:
            continue
        if name in SINGLE_VALUE and len(value) == 1:
            params[f"{name}_one"] = value[0]
            parts.append(f"report_filter_{name}_one")
        else:
            parts.append(f"report_filter_{name}")
    return tuple(parts)


def filter_sql(params: dict[str, Any], names: Sequence[str]) -> sql.Composed:
    return sql.SQL(" ").join(composed(name) for name in filter_fragments(params, names))


async def tenant_version(conn: Connection, *, tenant: str) -> int:
    cur = await conn.execute(q("tenant_version"), {"tenant": tenant})
    row = await cur.fetchone()
    return int(row[0]) if row else 0


async def bump_version(conn: Connection, *, tenant: str) -> None:
    await conn.execute(q("bump_version"), {"tenant": tenant})


@dataclass(slots=True)  # not frozen: a frozen __init__ costs ~1 µs more per report
class ReportRow:
    """One stored report, as the ingest writes it. The column list lives here alone:
    INSERT_COLUMNS (and the bench's COPY) derive from these fields, and orjson writes the
    record by field name (no intermediate dict per row)."""

    id: UUID
    received_at: datetime
    observed_at: datetime | None
    observed_at_raw: str
    source: str
    subject: str
    run_id: str | None
    labels: dict[str, str]
    status: str
    severity: str
    count_pass: int
    count_warn: int
    count_fail: int
    content_sha256: str
    canonical: bytes


INSERT_COLUMNS: tuple[str, ...] = tuple(f.name for f in fields(ReportRow))


def _json_default(value: Any) -> Any:
    if isinstance(value, bytes | bytearray | memoryview):
        return bytes(value).decode()  # canonical JSON: valid UTF-8 by construction
    raise TypeError(type(value).__name__)


# One insert statement carries about this much at most. libpq keeps a connection's send
# buffer at the size of the largest message it ever sent, for the connection's life: with
# one statement per group commit, every pooled connection came to hold a buffer of a whole
# commit (~2 MB for two batches of 500), ~20 MB of each API worker. Statements of a
# pipelined write still travel in one round trip.
STATEMENT_BYTES = 256 * 1024
_ROW_BYTES = 600  # a row's JSON around its canonical document, roughly


def _statements(rows: Sequence[ReportRow]) -> list[Sequence[ReportRow]]:
    chunks, start, size = [], 0, 0
    for end, row in enumerate(rows, 1):
        size += len(row.canonical) + _ROW_BYTES
        if size >= STATEMENT_BYTES:
            chunks.append(rows[start:end])
            start, size = end, 0
    if start < len(rows):
        chunks.append(rows[start:])
    return chunks


def fits_one_statement(rows: Sequence[ReportRow]) -> bool:
    """Whether write_ingest sends these rows as one statement (else several, which the
    caller must hold in one transaction)."""
    return len(_statements(rows)) <= 1


async def write_ingest(conn: Connection, *, tenant: str, rows: Sequence[ReportRow],
                       completed: Sequence[Completion], alert_window: int) -> None:
    """One tenant's ingest write: the rows, their rollup, the alert outbox, the completed
    Idempotency-Keys and the change version, one call of qcc_ingest_write (migration 0015)
    per STATEMENT_BYTES of rows. One call is a transaction by itself in autocommit;
    several need the caller's transaction (fits_one_statement says which)."""
    chunks = _statements(rows)
    for number, chunk in enumerate(chunks, 1):
        done = completed if number == len(chunks) else ()
        await conn.execute(q("ingest_write"), {
            "tenant": tenant, "rows": orjson.dumps(chunk, default=_json_default).decode(),
            "window": alert_window,
            "keys": [c.key for c in done] or None,
            "bodies": [c.body for c in done] or None,
            "locations": [c.location for c in done] or None,
        })


async def get(conn: Connection, *, tenant: str, report_id: UUID) -> tuple[bytes, str, bool] | None:
    cur = await conn.execute(q("get_report"), {"tenant": tenant, "id": report_id})
    row = await cur.fetchone()
    return (bytes(row[0]), row[1], row[2]) if row else None


def get_document(*, tenant: str, report_id: UUID
                 ) -> Read[tuple[bytes, str, bool, dict[str, Any] | None] | None]:
    """The canonical bytes, sha256, signed flag and (when signed) who signed when."""
    def result(rows: list[tuple[Any, ...]]) -> tuple[bytes, str, bool, dict[str, Any] | None] | None:
        return (bytes(rows[0][0]), rows[0][1], rows[0][2], rows[0][3]) if rows else None

    return Read(q("get_report_document"), {"tenant": tenant, "id": report_id}, result)


def bundle_source(*, tenant: str, report_id: UUID) -> Read[tuple[bytes, bytes | None] | None]:
    """A report's canonical bytes and its DSSE envelope (None while unsigned)."""
    def result(rows: list[tuple[Any, ...]]) -> tuple[bytes, bytes | None] | None:
        if not rows:
            return None
        canonical, envelope = rows[0]
        return bytes(canonical), bytes(envelope) if envelope is not None else None

    return Read(q("bundle_source"), {"tenant": tenant, "id": report_id}, result)


@dataclass(frozen=True, slots=True)
class JsonPage:
    items: bytes  # a JSON array, rendered by PostgreSQL
    more: bool
    last: tuple[datetime, UUID] | None  # the last item's keyset position


# The sort keys a list item holds exactly: received_at is rendered from its column to the
# microsecond, so the next cursor's position is read from the page's last item; observed_at
# is there as the producer's text, so that sort selects its column too. Selecting the
# position of all page_size + 1 rows cost ~40 µs of the worker's CPU per page of 50
# (decoding 102 timestamps and UUIDs; 66 against 104 µs, 5 rounds of 2,000 pages) and about
# a tenth of PostgreSQL's (text output of both).
KEY_IN_ITEM = frozenset({"received_at"})


@functools.lru_cache(maxsize=512)
def _page_statement(fragments: tuple[str, ...], sort: str, descending: bool, after: bool) -> str:
    """The page's statement text for one shape of filters (composed once per shape: the
    values are parameters)."""
    column = sql.Identifier(SORT_COLUMNS[sort])
    filters = sql.SQL(" ").join(composed(name) for name in fragments)
    if after:
        filters = filters + sql.SQL(" ") + composed(
            "report_filter_after", sort_col=column, cmp=sql.SQL("<" if descending else ">"))
    position = sql.SQL("") if sort in KEY_IN_ITEM else sql.SQL(", {}").format(column)
    return composed("list_reports_json", sort_col=column, filters=filters, position=position,
                    direction=sql.SQL("DESC" if descending else "ASC")).as_string()


def list_page_json(*, tenant: str, params: dict[str, Any], sort: str,
                   descending: bool) -> Read[JsonPage]:
    """One page (params["page_size"] items) as JSON; page_size + 1 rows tell if more follow."""
    statement = _page_statement(filter_fragments(params, REPORT_FILTERS), sort, descending,
                                params.get("after_time") is not None)
    size = params["page_size"]

    def position(row: tuple[Any, ...]) -> tuple[datetime, UUID]:
        item = orjson.loads(row[0])
        moment = datetime.fromisoformat(item[sort]) if sort in KEY_IN_ITEM else row[1]
        return moment, UUID(item["id"])

    def result(rows: list[tuple[Any, ...]]) -> JsonPage:
        page = rows[:size]
        more = len(rows) > size
        return JsonPage(b"[" + b",".join(row[0].encode() for row in page) + b"]", more,
                        position(page[-1]) if more else None)

    return Read(statement, {"tenant": tenant, **params}, result, generic_plan=True)


def timeline_buckets(*, tenant: str, params: dict[str, Any], group_by: str) -> Read[bytes]:
    """The buckets of [params since, until) in params["bucket"]s (params["width"]: one) as
    a JSON array, from the narrowest source that can answer: the first of ROLLUPS whose
    dimensions hold the grouping and every filter present, else the reports."""
    present = {name for name in REPORT_FILTERS[:5] if params.get(name) is not None}
    for table, dimensions in ROLLUPS:
        if group_by in dimensions and present <= set(dimensions):
            statement = _timeline_statement(table, filter_fragments(params, dimensions),
                                            params["bucket"], group_by)
            rollup = True
            break
    else:  # subject or labels: only the reports hold them
        statement = _timeline_statement(None, filter_fragments(params, REPORT_FILTERS[:5]),
                                        params["bucket"], group_by)
        rollup = False
    # A rollup's (tenant, hour) range plans alike for any window; over the reports the
    # window's width decides between an index and a bitmap scan: planned per call.
    return Read(statement, {"tenant": tenant, **params},
                lambda rows: b"[" + b",".join(row[0].encode() for row in rows) + b"]",
                generic_plan=rollup)


@functools.lru_cache(maxsize=256)
def _timeline_statement(rollup: str | None, fragments: tuple[str, ...], bucket: str,
                        group_by: str) -> str:
    """The statement text for one shape (composed once per shape: the values are
    parameters). since/until are the bucket range, part of every source's query."""
    group_col = sql.Identifier(GROUP_COLUMNS[group_by])
    filters = sql.SQL(" ").join(composed(name) for name in fragments)
    if rollup is None:
        counts = composed("timeline_from_reports", group_col=group_col, filters=filters)
    elif bucket == "hour" and dict(ROLLUPS)[rollup] == (group_by,):
        counts = composed("timeline_from_rollup_rows", rollup=sql.Identifier(rollup),
                          group_col=group_col, filters=filters)
    else:
        start = sql.Identifier("hour") if bucket == "hour" else sql.SQL("date_trunc('day', hour)")
        counts = composed("timeline_from_rollup", rollup=sql.Identifier(rollup),
                          group_col=group_col, filters=filters, start=start)
    return composed("timeline_buckets_json", counts=counts).as_string()
