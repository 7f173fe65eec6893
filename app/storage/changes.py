"""Tenant changes as PostgreSQL announces them: LISTEN on the channel that migration 0011's
trigger notifies whenever a tenant's ETag validator moves.

`follow(...)` keeps one session connection LISTENing for as long as the process lives and
reports three things to its caller (app/conditional.py's validator memory):
- `changed(tenant)`: a transaction that changed `tenant` committed;
- `alive()`: the heartbeat came back, so notifications are flowing right now. Every
  HEARTBEAT_SECONDS the connection notifies itself; the echo proves end to end that the
  channel works (a dead TCP peer or a pooler that drops notifications never echoes);
- `lost()`: anything learned before now may have missed a change (the connection failed,
  or a new LISTEN just began).
It reconnects with backoff and never raises: losing it only sends reads the long way.
Behind a transaction-mode pooler (the heartbeat runs on another server session than the
LISTEN) it never reports `alive()`: such a pooler drops notifications.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

import psycopg

log = logging.getLogger("qc_collector.storage.changes")

CHANNEL = "qcc_tenant_changes"
HEARTBEAT_SECONDS = 1.0
CONNECT_TIMEOUT_SECONDS = 5
RETRY_SECONDS = (0.2, 0.5, 1.0, 2.0, 5.0)


async def follow(conninfo: str, *, changed: Callable[[str], None], alive: Callable[[], None],
                 lost: Callable[[], None]) -> None:
    failures = 0
    while True:
        try:
            async with await psycopg.AsyncConnection.connect(
                    conninfo, autocommit=True, connect_timeout=CONNECT_TIMEOUT_SECONDS,
                    application_name="qc-collector-changes") as conn:
                async with conn.transaction():  # one server session even behind a pooler
                    await conn.execute(f"LISTEN {CHANNEL}")
                    listener = await _backend(conn)
                # a read that began before this LISTEN may have missed a change: forget it
                lost()
                failures = 0
                pooled = False
                while True:
                    # the empty payload is our own heartbeat: no tenant id is empty
                    cursor = await conn.execute(
                        "SELECT pg_backend_pid(), pg_notify(%s, '')", [CHANNEL])
                    row = await cursor.fetchone()
                    if row is None or row[0] != listener:
                        pooled = True
                        # a transaction-mode pooler ran the heartbeat on another server
                        # session: what reaches the listening one is lost; stay deaf
                        _warn_pooled(conninfo)
                    async for note in conn.notifies(timeout=HEARTBEAT_SECONDS):
                        if note.payload:
                            changed(note.payload)
                        elif not pooled:
                            alive()
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # any failure: forget, wait, reconnect
            lost()
            delay = RETRY_SECONDS[min(failures, len(RETRY_SECONDS) - 1)]
            failures += 1
            if failures == 1:
                log.warning("tenant change listener lost (%s); reconnecting",
                            exc.__class__.__name__)
            await asyncio.sleep(delay)


async def _backend(conn: psycopg.AsyncConnection) -> int | None:
    cursor = await conn.execute("SELECT pg_backend_pid()")
    row = await cursor.fetchone()
    return None if row is None else int(row[0])


_warned: set[str] = set()


def _warn_pooled(conninfo: str) -> None:
    if conninfo not in _warned:
        _warned.add(conninfo)
        log.warning("tenant change listener is behind a transaction-mode pooler: "
                    "If-None-Match is answered the full way; set WORKER_DATABASE_URL to a "
                    "direct connection to answer it from memory")
