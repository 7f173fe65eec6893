"""Forward-only SQL migrations, applied under a PostgreSQL advisory lock.

Each file in migrations/ runs once, in name order, in its own transaction, and is
recorded in schema_migrations. Replicas that start together queue on the lock; the
first applies, the others find nothing left to do.
"""

from __future__ import annotations

import hashlib
import logging
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


def migrate(conninfo: str) -> list[str]:
    """Apply pending migrations; returns the names applied by this call."""
    applied: list[str] = []
    with psycopg.connect(conninfo, autocommit=True) as conn:
        conn.execute("SELECT pg_advisory_lock(%s)", (LOCK_ID,))
        try:
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
                with conn.transaction():
                    conn.execute(_expand(sql).encode())
                    conn.execute(
                        "INSERT INTO schema_migrations (name, sha256) VALUES (%s, %s)",
                        (name, digest),
                    )
                log.info("applied migration %s", name)
                applied.append(name)
        finally:
            conn.execute("SELECT pg_advisory_unlock(%s)", (LOCK_ID,))
    return applied
