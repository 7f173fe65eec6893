"""Backup and restore rehearsal: seed through the API -> tools/backup-db.sh -> wipe ->
tools/restore-db.sh -> every table has the same rows (count and content hash), the same
owners, grants and row-level security policies, and the service works on it again.

Runs on its own embedded PostgreSQL (the database is dropped midway), with the client
tools pgserver ships (PG_BIN), exactly as an operator runs the scripts.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest
from psycopg import sql

from tests.factories import report
from tools.liveserver import ROOT, LiveDatabase, key_for, start_database, start_server

BACKUP = ROOT / "tools" / "backup-db.sh"
RESTORE = ROOT / "tools" / "restore-db.sh"
TENANTS = {"acme": 25, "globex": 10}


def pg_bin() -> Path:
    import pgserver

    return Path(pgserver.__file__).parent / "pginstall" / "bin"


def conninfo(url: str, **overrides: str) -> str:
    params = psycopg.conninfo.conninfo_to_dict(url)
    params.update(overrides)
    return psycopg.conninfo.make_conninfo(**{k: str(v) for k, v in params.items()})


def run(script: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["bash", str(script), *args], capture_output=True, text=True, timeout=120,
                          env={**os.environ, "PG_BIN": str(pg_bin()), **env})


def snapshot(owner_url: str) -> dict[str, Any]:
    """Everything a restore must reproduce: rows (count + content hash per table) and the
    security model (owners, RLS flags and policies, grants, function owners and ACLs)."""
    with psycopg.connect(owner_url) as conn:
        tables = [r[0] for r in conn.execute(
            "SELECT tablename FROM pg_tables WHERE schemaname = 'public' ORDER BY 1")]
        rows = {}
        for table in tables:
            rows[table] = conn.execute(sql.SQL(
                "SELECT count(*), md5(coalesce(string_agg(t::text, E'\\n' ORDER BY t::text), ''))"
                " FROM public.{} AS t").format(sql.Identifier(table))).fetchone()
        catalog = {
            "tables": conn.execute(
                "SELECT c.relname, pg_get_userbyid(c.relowner), c.relrowsecurity,"
                " c.relforcerowsecurity, c.relacl::text FROM pg_class c"
                " JOIN pg_namespace n ON n.oid = c.relnamespace"
                " WHERE n.nspname = 'public' AND c.relkind IN ('r', 'p', 'v', 'S') ORDER BY 1").fetchall(),
            "policies": conn.execute(
                "SELECT tablename, policyname, permissive, roles::text, cmd, qual, with_check"
                " FROM pg_policies WHERE schemaname = 'public' ORDER BY 1, 2").fetchall(),
            "functions": conn.execute(
                "SELECT p.oid::regprocedure::text, pg_get_userbyid(p.proowner), p.prosecdef,"
                " p.proacl::text, p.proconfig::text FROM pg_proc p"
                " JOIN pg_namespace n ON n.oid = p.pronamespace"
                " WHERE n.nspname = 'public' ORDER BY 1").fetchall(),
            "triggers": conn.execute(
                "SELECT tgrelid::regclass::text, tgname, tgenabled FROM pg_trigger"
                " WHERE NOT tgisinternal ORDER BY 1, 2").fetchall(),
            "schema_acl": conn.execute(
                "SELECT nspacl::text FROM pg_namespace WHERE nspname = 'public'").fetchone(),
        }
    return {"rows": rows, "catalog": catalog}


def listings(url: str) -> dict[str, tuple[str | None, Any]]:
    """Each tenant's full report list and its ETag, as the API serves them."""
    seen = {}
    with httpx.Client(base_url=url, timeout=30) as client:
        for tenant in TENANTS:
            answer = client.get("/reports", params={"limit": 500},
                                headers={"X-Api-Key": key_for(tenant, "admin")})
            assert answer.status_code == 200, answer.text
            seen[tenant] = (answer.headers.get("etag"), answer.json())
    return seen


@dataclass
class Rehearsal:
    db: LiveDatabase
    root_url: str  # the maintenance database of the same cluster
    backup: Path
    before: dict[str, Any]
    api_before: dict[str, tuple[str | None, Any]]
    tmp: Path


@pytest.fixture(scope="module")
def rehearsal(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Rehearsal]:
    tmp = tmp_path_factory.mktemp("rehearsal")
    db = start_database(tmp / "db")
    try:
        server = start_server(db, workers=1, run_dir=tmp / "server-before")
        try:
            with httpx.Client(base_url=server.url, timeout=30) as client:
                for tenant, count in TENANTS.items():
                    batch = client.post("/ingest/qc/batch", json={"reports": [
                        report(source=f"pipeline-{i % 3}", labels={"n": str(i)}) for i in range(count)]},
                        headers={"X-Api-Key": key_for(tenant, "operator")})
                    assert batch.status_code == 201, batch.text
                    single = client.post("/ingest/qc", json=report(), headers={
                        "X-Api-Key": key_for(tenant, "operator"), "Idempotency-Key": f"{tenant}-once"})
                    assert single.status_code == 201, single.text
            api_before = listings(server.url)
        finally:
            server.stop()
        before = snapshot(db.owner_url)
        made = run(BACKUP, DATABASE_URL=db.owner_url, BACKUP_DIR=str(tmp / "backups"))
        assert made.returncode == 0, made.stderr
        backup = Path(made.stdout.strip())
        yield Rehearsal(db, conninfo(db.owner_url, dbname="postgres"), backup, before, api_before, tmp)
    finally:
        db.stop()


def test_backup_is_gzip_with_a_checksum_sidecar_and_a_listable_archive(rehearsal):
    backup = rehearsal.backup
    assert backup.name.startswith("qc-collector-") and backup.name.endswith(".dump.gz")
    assert subprocess.run(["sha256sum", "--check", "--quiet", f"{backup.name}.sha256"],
                          cwd=backup.parent).returncode == 0
    assert subprocess.run(["gzip", "-t", str(backup)]).returncode == 0
    archive = rehearsal.tmp / "archive.dump"
    with open(archive, "wb") as out:
        subprocess.run(["gzip", "-dc", str(backup)], stdout=out, check=True)
    listing = subprocess.run([str(pg_bin() / "pg_restore"), "--list", str(archive)],
                             capture_output=True, text=True, check=True).stdout
    for table in rehearsal.before["rows"]:
        assert f" TABLE DATA public {table} " in listing
    assert sum(n for n, _ in rehearsal.before["rows"].values()) > sum(TENANTS.values())
    assert not list(backup.parent.glob(".partial-*"))
    content = Path(f"{backup}.content").read_text().split()
    assert f"public.reports={rehearsal.before['rows']['reports'][0]}:" in " ".join(content)
    assert len(content) == len(rehearsal.before["rows"])
    checked = run(RESTORE, "--check", str(backup), DATABASE_URL=rehearsal.root_url)
    assert checked.returncode == 0, checked.stderr
    assert "ok: checksum, gzip and archive listing" in checked.stderr
    assert f"content hashes of {len(content)} tables equal the backup's" in checked.stderr


def test_restore_after_wipe_reproduces_every_table_and_the_service_works(rehearsal):
    db = rehearsal.db
    with psycopg.connect(rehearsal.root_url, autocommit=True) as conn:
        conn.execute("DROP DATABASE qc_collector WITH (FORCE)")
        conn.execute("CREATE DATABASE qc_collector")

    restored = run(RESTORE, str(rehearsal.backup), DATABASE_URL=db.owner_url)
    assert restored.returncode == 0, restored.stderr

    after = snapshot(db.owner_url)
    assert after["rows"] == rehearsal.before["rows"]
    assert after["catalog"] == rehearsal.before["catalog"]

    # Row-level security still walls the app role in: no tenant set, no rows.
    with psycopg.connect(db.app_url) as conn:
        assert conn.execute("SELECT count(*) FROM reports").fetchone() == (0,)

    # The service, connected as the app role, serves the same lists with the same
    # validators, authenticates the restored keys, and accepts new reports.
    server = start_server(db, workers=1, run_dir=rehearsal.tmp / "server-after")
    try:
        assert listings(server.url) == rehearsal.api_before
        created = httpx.post(f"{server.url}/ingest/qc", json=report(), timeout=30,
                             headers={"X-Api-Key": key_for("acme", "operator")})
        assert created.status_code == 201, created.text
    finally:
        server.stop()


def test_restore_refuses_a_database_that_is_not_empty(rehearsal):
    refused = run(RESTORE, str(rehearsal.backup), DATABASE_URL=rehearsal.db.owner_url)
    assert refused.returncode != 0 and "not empty" in refused.stderr


def test_restore_clean_replaces_what_the_database_holds(rehearsal):
    with psycopg.connect(rehearsal.db.owner_url, autocommit=True) as conn:
        conn.execute("DELETE FROM reports WHERE tenant_id = 'globex'")
    replaced = run(RESTORE, str(rehearsal.backup), DATABASE_URL=rehearsal.db.owner_url,
                   RESTORE_CLEAN="true")
    assert replaced.returncode == 0, replaced.stderr
    assert snapshot(rehearsal.db.owner_url) == rehearsal.before


def test_restore_refuses_a_damaged_backup(rehearsal, tmp_path):
    damaged = tmp_path / rehearsal.backup.name
    data = bytearray(rehearsal.backup.read_bytes())
    data[len(data) // 2] ^= 0xFF
    damaged.write_bytes(bytes(data))
    shutil.copy(f"{rehearsal.backup}.sha256", f"{damaged}.sha256")
    refused = run(RESTORE, str(damaged), DATABASE_URL=rehearsal.db.owner_url)
    assert refused.returncode != 0 and "sha256 mismatch" in refused.stderr
    # A matching checksum does not vouch for a file damaged before it was computed.
    Path(f"{damaged}.sha256").write_text(
        subprocess.run(["sha256sum", damaged.name], cwd=tmp_path, capture_output=True,
                       text=True, check=True).stdout)
    refused = run(RESTORE, "--check", str(damaged))
    assert refused.returncode != 0 and "gzip -t failed" in refused.stderr


def regzipped(rehearsal, tmp_path, old: bytes, new: bytes) -> Path:
    """The backup with some bytes of the archive changed, re-gzipped, with a fresh (and
    so matching) sha256 sidecar: every file-level check passes."""
    assert len(old) == len(new)
    archive = subprocess.run(["gzip", "-dc", str(rehearsal.backup)], capture_output=True, check=True).stdout
    assert archive.count(old) >= 1
    damaged = tmp_path / rehearsal.backup.name
    damaged.write_bytes(subprocess.run(["gzip", "-c", "--no-name"], input=archive.replace(old, new, 1),
                                       capture_output=True, check=True).stdout)
    Path(f"{damaged}.sha256").write_text(subprocess.run(
        ["sha256sum", damaged.name], cwd=tmp_path, capture_output=True, text=True, check=True).stdout)
    shutil.copy(f"{rehearsal.backup}.content", f"{damaged}.content")
    return damaged


def test_check_restores_and_refuses_a_corrupted_function_body(rehearsal, tmp_path):
    damaged = regzipped(rehearsal, tmp_path, b"current_setting('app.tenant', true)",
                        b"current_settinX('app.tenant', true)")
    refused = run(RESTORE, "--check", str(damaged), DATABASE_URL=rehearsal.root_url)
    assert refused.returncode != 0
    assert "does not restore into a scratch database" in refused.stderr, refused.stderr


def test_check_refuses_rows_that_differ_from_the_dumped_snapshot(rehearsal, tmp_path):
    damaged = regzipped(rehearsal, tmp_path, b"pipeline-1", b"pipeline-9")
    refused = run(RESTORE, "--check", str(damaged), DATABASE_URL=rehearsal.root_url)
    assert refused.returncode != 0
    assert "restored rows differ from the backup's snapshot" in refused.stderr, refused.stderr
    with psycopg.connect(rehearsal.root_url) as conn:  # the scratch databases are gone
        left = conn.execute("SELECT count(*) FROM pg_database WHERE datname LIKE 'qcc\\_%%'").fetchone()
    assert left == (0,)


def test_restore_names_roles_missing_from_the_cluster_or_creates_them(rehearsal):
    # Roles are cluster-wide: renaming one away stands in for a brand-new cluster.
    scratch = conninfo(rehearsal.db.owner_url, dbname="scratch")
    with psycopg.connect(rehearsal.root_url, autocommit=True) as conn:
        conn.execute("CREATE DATABASE scratch")
        conn.execute("ALTER ROLE qcc_definer RENAME TO qcc_definer_away")
        try:
            refused = run(RESTORE, str(rehearsal.backup), DATABASE_URL=scratch)
            created = run(RESTORE, str(rehearsal.backup), DATABASE_URL=scratch,
                          RESTORE_CREATE_ROLES="true")
            role = conn.execute("SELECT rolcanlogin FROM pg_roles WHERE rolname = 'qcc_definer'").fetchone()
            restored = snapshot(scratch)
        finally:
            conn.execute("DROP DATABASE IF EXISTS scratch")
            conn.execute("DROP ROLE IF EXISTS qcc_definer")
            conn.execute("ALTER ROLE qcc_definer_away RENAME TO qcc_definer")
    assert refused.returncode != 0
    assert "roles missing in the target cluster: qcc_definer" in refused.stderr
    assert created.returncode == 0, created.stderr
    assert role == (False,)
    assert restored["rows"] == rehearsal.before["rows"]


def test_backup_with_db_variables_prunes_backups_past_retention(rehearsal, tmp_path):
    old = tmp_path / "qc-collector-20200101T000000Z.dump.gz"
    recent = tmp_path / "qc-collector-20200102T000000Z.dump.gz"
    unrelated = tmp_path / "notes.txt"
    for path, age_days in ((old, 31), (Path(f"{old}.sha256"), 31), (recent, 29), (unrelated, 400)):
        path.write_text("x")
        stamp = path.stat().st_mtime - age_days * 86400
        os.utime(path, (stamp, stamp))
    params = psycopg.conninfo.conninfo_to_dict(rehearsal.db.owner_url)
    made = run(BACKUP, BACKUP_DIR=str(tmp_path), BACKUP_RETENTION_DAYS="30",
               DB_HOST=str(params["host"]), DB_PORT=str(params.get("port", 5432)),
               DB_NAME=str(params["dbname"]), DB_USER=str(params["user"]))
    assert made.returncode == 0, made.stderr
    assert not old.exists() and not Path(f"{old}.sha256").exists()
    assert recent.exists() and unrelated.exists() and Path(made.stdout.strip()).exists()
