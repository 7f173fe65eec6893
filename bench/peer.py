"""The hand-written peers: bare Starlette + psycopg endpoints, no validation, no auth.

POST /ingest parses the JSON body and INSERTs it as one reports row in its own
autocommit transaction (as the owner, so no row-level security). GET /reports runs the
list's SELECT (one severity, newest first, limit + 1 rows) and writes the page with
orjson: no cursor, no ETag, no validator. Served by the same gunicorn + uvicorn worker
setup as the app:

    PEER_DATABASE_URL=... gunicorn -k uvicorn_worker.UvicornWorker -w 2 bench.peer:app
"""

from __future__ import annotations

import contextlib
import hashlib
import os
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any
from uuid import UUID

import orjson
import uuid_utils
from psycopg.rows import dict_row
from psycopg.types.json import Jsonb
from psycopg_pool import AsyncConnectionPool
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from app.config import Settings

# Same pool size as the app's default DB_POOL_MAX.
POOL_SIZE: int = Settings.model_fields["db_pool_max"].default
INSERT = """
INSERT INTO reports (tenant_id, id, received_at, observed_at, observed_at_raw, source, subject,
                     run_id, labels, status, severity, count_pass, count_warn, count_fail,
                     content_sha256, canonical)
VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)
"""
LIST = """
SELECT id, source, subject, run_id, observed_at_raw, received_at, labels, status, severity,
       count_pass, count_warn, count_fail, content_sha256, signed
  FROM reports
 WHERE tenant_id = %s AND severity = %s
 ORDER BY received_at DESC, id DESC
 LIMIT %s
"""
SEVERITIES = ("info", "warn", "block")

pool = AsyncConnectionPool(os.environ.get("PEER_DATABASE_URL", ""), min_size=POOL_SIZE,
                           max_size=POOL_SIZE, kwargs={"autocommit": True}, open=False)


def row(body: bytes, report: dict[str, Any]) -> tuple[Any, ...]:
    """The reports row, with only the derivations a column needs (no canonical JSON)."""
    counts = {"pass": 0, "warn": 0, "fail": 0}
    worst = 0
    for check in report["checks"]:
        counts[check["status"]] += 1
        if check["status"] != "pass":
            worst = max(worst, SEVERITIES.index(check["severity"]))
    status = "fail" if counts["fail"] else "warn" if counts["warn"] else "pass"
    return ("acme", UUID(bytes=uuid_utils.uuid7().bytes), datetime.now(UTC),
            datetime.fromisoformat(report["observed_at"]), report["observed_at"],
            report["source"], report["subject"], report.get("run_id"),
            Jsonb(report.get("labels", {})), status, SEVERITIES[worst], counts["pass"],
            counts["warn"], counts["fail"], hashlib.sha256(body).hexdigest(), body)


async def ingest(request: Request) -> Response:
    body = await request.body()
    values = row(body, orjson.loads(body))
    async with pool.connection() as conn:
        await conn.execute(INSERT, values)
    return Response(orjson.dumps({"id": str(values[1])}), status_code=201,
                    media_type="application/json")


async def list_reports(request: Request) -> Response:
    severity = request.query_params.get("severity", "block")
    limit = int(request.query_params.get("limit", "50"))
    async with pool.connection() as conn, conn.cursor(row_factory=dict_row) as cur:
        await cur.execute(LIST, (request.query_params.get("tenant", "acme"), severity,
                                 limit + 1))
        rows = await cur.fetchall()
    body = {"items": rows[:limit], "next_cursor": str(rows[-1]["id"]) if len(rows) > limit
            else None}
    return Response(orjson.dumps(body), media_type="application/json")


@contextlib.asynccontextmanager
async def lifespan(_: Starlette) -> AsyncIterator[None]:
    await pool.open(wait=True)
    try:
        yield
    finally:
        await pool.close()


app = Starlette(routes=[Route("/ingest", ingest, methods=["POST"]),
                       Route("/reports", list_reports, methods=["GET"])], lifespan=lifespan)
