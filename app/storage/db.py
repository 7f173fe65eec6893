"""Connection pool lifecycle and the tenant-scoped transaction every query runs in."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from uuid import UUID

import orjson
import psycopg
from psycopg.types.json import set_json_dumps, set_json_loads
from psycopg_pool import AsyncConnectionPool

from app.errors import ServiceUnavailable

log = logging.getLogger("qc_collector.storage")

set_json_dumps(orjson.dumps)
set_json_loads(orjson.loads)

# UTC: date_trunc buckets and timestamps are UTC whatever the server's default.
SESSION_OPTIONS = "-c TimeZone=UTC"

Connection = psycopg.AsyncConnection


def _with_options(conninfo: str) -> str:
    return psycopg.conninfo.make_conninfo(conninfo, options=SESSION_OPTIONS,
                                          application_name="qc-collector")


async def open_pool(conninfo: str, *, min_size: int, max_size: int,
                    prepare_threshold: int | None = 5) -> AsyncConnectionPool:
    # prepare_threshold None: behind a transaction-mode pooler without prepared-statement
    # support, a statement prepared on one server connection is unknown on the next
    pool = AsyncConnectionPool(
        _with_options(conninfo), min_size=min_size, max_size=max_size, open=False,
        kwargs={"autocommit": True, "prepare_threshold": prepare_threshold},
        name="qc-collector", timeout=10.0,
    )
    await pool.open(wait=False)
    return pool


SET_SCOPE = ("SELECT set_config('app.tenant', %s, true), set_config('app.actor_key', %s, true),"
             " set_config('app.actor', %s, true)")


@asynccontextmanager
async def tenant_transaction(pool: AsyncConnectionPool, tenant: str, *,
                             actor_key: UUID | None = None, actor: str = "api",
                             pipeline: bool = False) -> AsyncIterator[Connection]:
    """A transaction whose row-level security sees only `tenant` (SET LOCAL app.tenant);
    the actor settings name who acts, for the audit triggers.

    Pipeline mode: BEGIN, the settings and every statement up to the first read of a
    result travel in one round trip, and COMMIT rides with the end of the block. (Server-
    side cursors need pipeline=False.)"""
    try:
        async with pool.connection() as conn:
            if pipeline:
                async with conn.pipeline(), conn.transaction():
                    await conn.execute(SET_SCOPE, (tenant, str(actor_key or ""), actor))
                    yield conn
            else:
                async with conn.transaction():
                    await conn.execute(SET_SCOPE, (tenant, str(actor_key or ""), actor))
                    yield conn
    except (psycopg.OperationalError, TimeoutError) as exc:
        log.error("database unavailable: %s", exc.__class__.__name__)
        raise ServiceUnavailable("database is unavailable; retry later") from exc


@asynccontextmanager
async def connection(pool: AsyncConnectionPool) -> AsyncIterator[Connection]:
    """A pooled connection in autocommit, for single statements that need no tenant scope
    (definer functions that take the tenant as a parameter)."""
    try:
        async with pool.connection() as conn:
            yield conn
    except (psycopg.OperationalError, TimeoutError) as exc:
        log.error("database unavailable: %s", exc.__class__.__name__)
        raise ServiceUnavailable("database is unavailable; retry later") from exc


async def set_tenant(conn: Connection, tenant: str) -> None:
    """Switch the RLS tenant inside an open transaction (group commit spans tenants)."""
    await conn.execute("SELECT set_config('app.tenant', %s, true)", (tenant,))


async def ping(pool: AsyncConnectionPool) -> bool:
    try:
        async with pool.connection(timeout=2.0) as conn:
            await conn.execute("SELECT 1")
        return True
    except Exception:  # any failure means "not ready"
        return False
