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
    owner_url = _conninfo(root_url, dbname=DATABASE)
    app_url = _conninfo(root_url, dbname=DATABASE, user=APP_ROLE)
    log.info("embedded PostgreSQL running in %s", pgdata)
    return EmbeddedDatabase(server=server, owner_url=owner_url, app_url=app_url)


def ensure_app_login(conn: psycopg.Connection) -> None:
    """The app role may log in over the (trust-authenticated, local-only) socket."""
    conn.execute(
        "DO $$ BEGIN IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'qcc_app') THEN"
        " CREATE ROLE qcc_app LOGIN; ELSE ALTER ROLE qcc_app LOGIN; END IF; END $$"
    )
