"""Forward-only SQL migrations, applied under a PostgreSQL advisory lock.

Each file in migrations/ runs once, in name order, in its own transaction, and is
recorded in schema_migrations. Replicas that start together queue on the lock; the
first applies, the others find nothing left to do.

Every statement runs under `lock_timeout` and `statement_timeout`: a migration that
queues behind a long reader (an export's cursor) would otherwise hold its place in the
lock queue and block every ingest behind it. It gives up after `lock_timeout`, rolls
back, waits and retries the file; after `lock_retries` attempts the migration fails
with the name of the file (the release can be retried at a quieter time).
"""

from __future__ import annotations

import hashlib
import logging
import time
from importlib import resources

import psycopg

log = logging.getLogger("qc_collector.migrate")

LOCK_ID = 0x51CC011EC7  # "qc collector"; any constant shared by every replica


INCLUDES = {
    # the job queue's schema, as shipped by the pinned procrastinate package
    "procrastinate-schema": lambda: (resources.files("procrastinate.sql") / "schema.sql").read_text(),
}
DIRECTIVE = "-- qcc:include "


def _migrations() -> list[tuple[str, str]]:
    folder = resources.files("app.storage") / "migrations"
    files = sorted((p for p in folder.iterdir() if p.name.endswith(".sql")), key=lambda p: p.name)
    return [(p.name, p.read_text()) for p in files]


def _expand(sql: str) -> str:
    """A migration may include a library's schema by name (the digest covers the name)."""
    lines = []
    for line in sql.splitlines():
        if line.startswith(DIRECTIVE):
            lines.append(INCLUDES[line.removeprefix(DIRECTIVE).strip()]())
        else:
            lines.append(line)
    return "\n".join(lines)


LOCK_TIMEOUT = "5s"
STATEMENT_TIMEOUT = "15min"
LOCK_RETRIES = 10


def migrate(conninfo: str, *, lock_timeout: str = LOCK_TIMEOUT,
            statement_timeout: str = STATEMENT_TIMEOUT, lock_retries: int = LOCK_RETRIES) -> list[str]:
    """Apply pending migrations; returns the names applied by this call."""
    applied: list[str] = []
    with psycopg.connect(conninfo, autocommit=True) as conn:
        # Replicas wait for each other on the advisory lock without a timeout; the
        # timeouts apply to the migrations' own statements once this one holds it.
        conn.execute("SELECT pg_advisory_lock(%s)", (LOCK_ID,))
        try:
            conn.execute("SELECT set_config('lock_timeout', %s, false),"
                         " set_config('statement_timeout', %s, false)",
                         (lock_timeout, statement_timeout))
            conn.execute(
                "CREATE TABLE IF NOT EXISTS schema_migrations ("
                " name text PRIMARY KEY, sha256 text NOT NULL,"
                " applied_at timestamptz NOT NULL DEFAULT now())"
            )
            done = {
                row[0]: row[1]
                for row in conn.execute("SELECT name, sha256 FROM schema_migrations")
            }
            for name, sql in _migrations():
                digest = hashlib.sha256(sql.encode()).hexdigest()
                if name in done:
                    if done[name] != digest:
                        raise RuntimeError(
                            f"migration {name} changed after it was applied; "
                            "migrations are forward-only: add a new file instead"
                        )
                    continue
                _apply(conn, name, sql, digest, lock_retries)
                log.info("applied migration %s", name)
                applied.append(name)
        finally:
            conn.execute("SELECT pg_advisory_unlock(%s)", (LOCK_ID,))
    return applied


def _apply(conn: psycopg.Connection, name: str, sql: str, digest: str, lock_retries: int) -> None:
    for attempt in range(1, lock_retries + 1):
        try:
            with conn.transaction():
                conn.execute(_expand(sql).encode())
                conn.execute(
                    "INSERT INTO schema_migrations (name, sha256) VALUES (%s, %s)",
                    (name, digest),
                )
            return
        except psycopg.errors.LockNotAvailable:
            if attempt == lock_retries:
                raise RuntimeError(
                    f"migration {name}: a table it alters stayed locked by other sessions "
                    f"through {lock_retries} attempts (lock_timeout each); nothing was "
                    "changed: retry when the long-running queries are done"
                ) from None
            log.warning("migration %s waited lock_timeout for a lock; retry %d of %d",
                        name, attempt, lock_retries - 1)
            time.sleep(min(attempt, 5))
