"""Migrations: forward-only, safe when several replicas start at once."""

from __future__ import annotations

import subprocess
import sys

import psycopg
import pytest

from app.storage.migrate import _migrations, migrate


def test_three_replicas_migrating_at_once_apply_each_file_once(fresh_database):
    code = "import sys; from app.storage.migrate import migrate; print(len(migrate(sys.argv[1])))"
    procs = [subprocess.Popen([sys.executable, "-c", code, fresh_database.owner_url],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for _ in range(3)]
    results = [p.communicate(timeout=60) for p in procs]
    assert [p.returncode for p in procs] == [0, 0, 0], results
    applied = sorted(int(out.strip()) for out, _ in results)
    assert applied == [0, 0, len(_migrations())]  # one replica did the work
    with psycopg.connect(fresh_database.owner_url) as conn:
        names = [r[0] for r in conn.execute("SELECT name FROM schema_migrations ORDER BY name")]
    assert names == [name for name, _ in _migrations()]


def test_an_applied_migration_may_not_change(fresh_database):
    migrate(fresh_database.owner_url)
    with psycopg.connect(fresh_database.owner_url, autocommit=True) as conn:
        conn.execute("UPDATE schema_migrations SET sha256 = 'edited'")
    with pytest.raises(RuntimeError, match="forward-only"):
        migrate(fresh_database.owner_url)


def test_a_rewritten_definer_function_keeps_its_owner_and_grants(database):
    """0013 replaces 0006's qcc_tenant_version: it still runs as qcc_definer (RLS-free
    lookup of one tenant's counter), PUBLIC may not call it, the app role may, and it
    answers each tenant's own counter (0 for a tenant without changes)."""
    with psycopg.connect(database.owner_url, autocommit=True) as conn:
        owner, public, app = conn.execute(
            "SELECT pg_get_userbyid(proowner), has_function_privilege('public',"
            " p.oid, 'EXECUTE'), has_function_privilege('qcc_app', p.oid, 'EXECUTE')"
            " FROM pg_proc p WHERE proname = 'qcc_tenant_version'").fetchone()
        assert (owner, public, app) == ("qcc_definer", False, True)
    with psycopg.connect(database.app_url, autocommit=True) as conn:
        conn.execute("SELECT set_config('app.tenant', 'acme', false)")
        mine, none = conn.execute("SELECT qcc_tenant_version('acme'),"
                                  " qcc_tenant_version('no-such-tenant')").fetchone()
    with psycopg.connect(database.owner_url) as conn:
        row = conn.execute("SELECT version FROM tenant_versions WHERE tenant_id = 'acme'").fetchone()
    assert (mine, none) == ((row[0] if row else 0), 0)


@pytest.fixture
def managed_cluster(tmp_path):
    """A throw-away PostgreSQL cluster shaped like managed PostgreSQL 16 (RDS, Cloud SQL,
    Azure): the migrator is a CREATEROLE login that owns its database and is no
    superuser; the group roles qcc_app and qcc_definer do not exist yet."""
    import pgserver

    server = pgserver.get_server(tmp_path / "pgdata", cleanup_mode="stop")
    root = server.get_uri()
    with psycopg.connect(root, autocommit=True) as conn:
        # the provider's administrator: what RDS gives its master user `postgres`
        conn.execute("CREATE ROLE cloud_admin LOGIN CREATEROLE CREATEDB NOSUPERUSER")
    params = psycopg.conninfo.conninfo_to_dict(root)
    params.update(user="cloud_admin")
    with psycopg.connect(psycopg.conninfo.make_conninfo(**params), autocommit=True) as admin:
        # docs/RUNBOOK.md, section 2, as written
        admin.execute("CREATE ROLE managed_owner LOGIN CREATEROLE")
        admin.execute("GRANT managed_owner TO CURRENT_USER")
        admin.execute("CREATE DATABASE managed OWNER managed_owner")
    params.update(dbname="managed", user="managed_owner")
    try:
        yield psycopg.conninfo.make_conninfo(**params)
    finally:
        server.cleanup()


def test_every_migration_applies_as_a_non_superuser_owner(managed_cluster):
    with psycopg.connect(managed_cluster) as conn:
        row = conn.execute("SELECT rolsuper, rolcreaterole FROM pg_roles WHERE rolname = current_user")
        assert row.fetchone() == (False, True)
    assert migrate(managed_cluster) == [name for name, _ in _migrations()]
    assert migrate(managed_cluster) == []  # a second run (next release) finds nothing to do
    with psycopg.connect(managed_cluster, autocommit=True) as conn:
        # The owner makes the app's login itself (what docs/RUNBOOK.md tells the SRE to do).
        conn.execute("CREATE ROLE managed_app LOGIN IN ROLE qcc_app")
        owners = conn.execute(
            "SELECT DISTINCT pg_get_userbyid(proowner) FROM pg_proc"
            " WHERE proname LIKE 'qcc\\_%%' AND prosecdef").fetchall()
        assert owners == [("qcc_definer",)]
    params = psycopg.conninfo.conninfo_to_dict(managed_cluster)
    params["user"] = "managed_app"
    with psycopg.connect(psycopg.conninfo.make_conninfo(**params)) as app:
        # A definer function runs (authentication path) and RLS hides other tenants' rows.
        assert app.execute("SELECT * FROM qcc_lookup_api_key('\\x00'::bytea)").fetchall() == []
        assert app.execute("SELECT count(*) FROM reports").fetchone() == (0,)


def test_a_migration_behind_a_long_reader_gives_up_instead_of_blocking_writers(fresh_database, monkeypatch):
    import app.storage.migrate as migrate_module

    migrate(fresh_database.owner_url)
    pending = [("9999_alter.sql", "ALTER TABLE reports ADD COLUMN extra text")]
    monkeypatch.setattr(migrate_module, "_migrations", lambda: [*_migrations(), *pending])
    with psycopg.connect(fresh_database.owner_url) as reader:
        # an export's cursor: a long transaction holding ACCESS SHARE on reports
        reader.execute("SELECT count(*) FROM reports").fetchone()
        with pytest.raises(RuntimeError, match=r"9999_alter\.sql.*stayed locked"):
            migrate(fresh_database.owner_url, lock_timeout="200ms", lock_retries=2)
        # the ALTER left the lock queue: a writer is not stuck behind it
        with psycopg.connect(fresh_database.owner_url) as writer:
            writer.execute("SET LOCAL lock_timeout = '1s'")
            writer.execute("LOCK TABLE reports IN ROW EXCLUSIVE MODE")
    assert migrate(fresh_database.owner_url, lock_timeout="200ms") == ["9999_alter.sql"]
