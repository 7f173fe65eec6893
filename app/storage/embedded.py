"""The embedded default: a real PostgreSQL started through pgserver under the data dir."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg
from psycopg import sql

log = logging.getLogger("qc_collector.embedded")

DATABASE = "qc_collector"
APP_ROLE = "qcc_app"

# Server settings the embedded database runs with (ALTER SYSTEM, kept in its data dir).
# wal_compression: a retention commit deleting 1,000,000 reports writes ~2.2 GB of WAL,
# nearly all of it full-page images (every heap page it empties, once per checkpoint);
# every ingest commit meanwhile waits for its own flush behind those bytes. Compressed
# (pglz: this build of PostgreSQL has neither lz4 nor zstd) it writes ~1.1-1.2 GB, and
# ingest's p99 during the commit rose 1.78-2.75x over its p99 without it instead of
# 2.98-4.02x (RETENTION_PAUSE 1; ad-hoc probe, 2-4 rounds each, interleaved). A managed or
# self-managed server is tuned by its operator: docs/RUNBOOK.md (section 8) says how.
SERVER_SETTINGS = {"wal_compression": "pglz"}


@dataclass(frozen=True)
class EmbeddedDatabase:
    server: Any
    owner_url: str  # superuser: migrations and the operator CLI
    app_url: str  # qcc_app: what the service connects as (RLS applies)

    def stop(self) -> None:
        self.server.cleanup()


def _conninfo(uri: str, **overrides: str) -> str:
    params = psycopg.conninfo.conninfo_to_dict(uri)
    params.update(overrides)
    return psycopg.conninfo.make_conninfo(**{k: str(v) for k, v in params.items()})


def start(data_dir: Path) -> EmbeddedDatabase:
    """Start (or attach to) the embedded server; data survives restarts."""
    import pgserver  # heavy import, only needed in the embedded mode

    pgdata = data_dir / "pgdata"
    pgdata.mkdir(parents=True, exist_ok=True)
    server = pgserver.get_server(pgdata, cleanup_mode="stop")
    root_url = server.get_uri()
    with psycopg.connect(root_url, autocommit=True) as conn:
        exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (DATABASE,)).fetchone()
        if not exists:
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(DATABASE)))
        ensure_app_login(conn)
        apply_server_settings(conn)
    owner_url = _conninfo(root_url, dbname=DATABASE)
    app_url = _conninfo(root_url, dbname=DATABASE, user=APP_ROLE)
    log.info("embedded PostgreSQL running in %s", pgdata)
    return EmbeddedDatabase(server=server, owner_url=owner_url, app_url=app_url)


def apply_server_settings(conn: psycopg.Connection) -> None:
    """SERVER_SETTINGS that differ from the running server's, applied by a reload (each
    one takes effect without a restart)."""
    changed = False
    for name, value in SERVER_SETTINGS.items():
        current = conn.execute("SELECT current_setting(%s)", (name,)).fetchone()
        if current is None or current[0] != value:
            conn.execute(sql.SQL("ALTER SYSTEM SET {} = {}").format(
                sql.Identifier(name), sql.Literal(value)))
            changed = True
    if changed:
        conn.execute("SELECT pg_reload_conf()")


def ensure_app_login(conn: psycopg.Connection) -> None:
    """The app role may log in over the (trust-authenticated, local-only) socket."""
    conn.execute(
        "DO $$ BEGIN IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'qcc_app') THEN"
        " CREATE ROLE qcc_app LOGIN; ELSE ALTER ROLE qcc_app LOGIN; END IF; END $$"
    )
