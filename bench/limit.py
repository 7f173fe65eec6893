"""The limit: pgbench running each path's own statements at the bench's concurrency.

What PostgreSQL alone can do on this machine for the statements a request sends: the
text comes from app/storage/queries.sql (the same names the storage layer runs), the
parameters are rendered as literals by psycopg's client-side binding, and pgbench (from
the embedded PostgreSQL's own binaries) runs them as the app role, in the transaction
and with the RLS scope the service uses. No HTTP, no Python: the ceiling we close in on.
"""

from __future__ import annotations

import os
import re
import subprocess
import tempfile
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson
import psycopg

from app.storage import reports as report_store
from app.storage.db import Read, prepared_call, scope_version_statement
from app.storage.queries import q
from bench import wrk

# pgbench's own threads (-j): PostgreSQL's rate, not the client's, is the limit
THREADS = 2
# the id of each pgbench ingest: a valid uuid whose last 12 digits pgbench substitutes
ID_PREFIX = "00000000-0000-7000-8000-"


@dataclass(frozen=True)
class Limit:
    tps: float
    latency_ms: float
    failed: int


def pgbench_binary() -> Path:
    import pgserver  # the embedded server's own binaries

    return Path(pgserver.__file__).parent / "pginstall" / "bin" / "pgbench"


def _render(conn: psycopg.Connection, name_or_text: str, params: dict[str, Any]) -> str:
    text = q(name_or_text) if re.fullmatch(r"\w+", name_or_text) else name_or_text
    with psycopg.ClientCursor(conn) as cur:
        rendered = cur.mogrify(text, params)
    # pgbench reads one statement per line unless it ends with `;` on a later line
    return " ".join(rendered.split()) + ";"


def ingest_script(conn: psycopg.Connection, *, tenant: str, canonical: str,
                  window: int = 300) -> str:
    """One single-report ingest, as a group commit of one report sends it: one call of the
    ingest write in autocommit (rows, rollup, outbox, version; its own transaction)."""
    report_id = f"{ID_PREFIX}:n"
    row = {"id": report_id, "received_at": datetime.now(UTC).isoformat(),
           "observed_at": "2026-11-21T02:03:11+00:00", "observed_at_raw": "2026-11-21T02:03:11Z",
           "source": "etl-nightly", "subject": "dataset:orders_1", "run_id": "pgbench",
           "labels": {"env": "prod", "team": "billing"}, "status": "fail",
           "severity": "block", "count_pass": 3, "count_warn": 1, "count_fail": 1,
           "content_sha256": "0" * 64, "canonical": canonical}
    lines = [
        r"\set n random(100000000000, 999999999999)",
        _render(conn, "ingest_write", {"tenant": tenant, "rows": orjson.dumps([row]).decode(),
                                       "window": window, "keys": None, "bodies": None,
                                       "locations": None}),
    ]
    return "\n".join(lines) + "\n"


def versioned_read(conn: psycopg.Connection, *, tenant: str, read: Read[Any]) -> str:
    """A versioned read's one round trip, as `Database.read_versioned` sends it: each pgbench
    client PREPAREs the scope and the read once (its first transaction), then every
    transaction is their two EXECUTEs, one compound command (`\\;`, -M simple) — one
    implicit transaction."""
    prepares, calls = [], []
    with psycopg.ClientCursor(conn) as cur:
        for statement, params in ((scope_version_statement(read, prepared=True),
                                   {"tenant": tenant}), (read.statement, read.params)):
            _, prepare, call, args = prepared_call(statement, params)
            prepares.append(" ".join(prepare.split()) + ";")
            calls.append(" ".join(cur.mogrify(call, args).split()))
    return "\n".join([
        "\\if :prepared = 0",
        *prepares,
        "\\set prepared 1",
        "\\endif",
        " \\; ".join(calls) + ";",
    ]) + "\n"


def list_script(conn: psycopg.Connection, *, tenant: str, severity: str, limit: int) -> str:
    """A list request's one round trip: the scope with the validator, and the page rendered
    as JSON, in one implicit transaction."""
    read = report_store.list_page_json(tenant=tenant, params={"severity": [severity],
                                                              "page_size": limit},
                                       sort="received_at", descending=True)
    return versioned_read(conn, tenant=tenant, read=read)


def not_modified_script(conn: psycopg.Connection, *, tenant: str) -> str:
    """A 304's one statement: the tenant's version."""
    return _render(conn, "tenant_version", {"tenant": tenant}) + "\n"


def timeline_script(conn: psycopg.Connection, *, tenant: str) -> str:
    """A timeline request's one round trip: the scope with the validator, and the buckets
    rendered as JSON (30 days x hour, grouped by severity: the statement the service
    composes for it), in one implicit transaction."""
    until = datetime.now(UTC).replace(minute=0, second=0, microsecond=0) + timedelta(hours=1)
    params: dict[str, Any] = {"bucket": "hour", "since": until - timedelta(days=30),
                              "until": until, "width": timedelta(hours=1)}
    read = report_store.timeline_buckets(tenant=tenant, params=params, group_by="severity")
    return versioned_read(conn, tenant=tenant, read=read)


def run(app_url: str, script: str, *, seconds: float, clients: int = wrk.CONNECTIONS,
        threads: int = THREADS, mode: str = "prepared") -> Limit:
    """pgbench -n (no vacuum, no pgbench tables) with `script` for `seconds`."""
    params = psycopg.conninfo.conninfo_to_dict(app_url)
    env = {**os.environ}
    for key, var in (("host", "PGHOST"), ("port", "PGPORT"), ("user", "PGUSER"),
                     ("dbname", "PGDATABASE"), ("password", "PGPASSWORD")):
        if params.get(key):
            env[var] = str(params[key])
    env["PGOPTIONS"] = "-c TimeZone=UTC"
    with tempfile.TemporaryDirectory(prefix="qcc-pgbench-") as tmp:
        path = Path(tmp) / "path.sql"
        path.write_text(script)
        result = subprocess.run(
            [str(pgbench_binary()), "-n", "-f", str(path), "-c", str(clients), "-j", str(threads),
             "-D", "prepared=0",  # versioned reads PREPARE once per client (versioned_read)
             "-T", f"{max(1, round(seconds))}", "-M", mode],
            env=env, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise RuntimeError(f"pgbench failed ({result.returncode}):\n{result.stderr[-3000:]}")
    tps = re.search(r"tps = ([\d.]+)", result.stdout)
    lat = re.search(r"latency average = ([\d.]+) ms", result.stdout)
    failed = re.search(r"number of failed transactions: (\d+)", result.stdout)
    if tps is None:
        raise RuntimeError(f"pgbench printed no tps:\n{result.stdout[-3000:]}")
    return Limit(float(tps[1]), float(lat[1]) if lat else 0.0, int(failed[1]) if failed else 0)
