"""Row-level security is the second wall: forced on every tenant table, app not owner."""

from __future__ import annotations

import psycopg
import pytest

TENANT_TABLES = """
SELECT c.relname, c.relrowsecurity, c.relforcerowsecurity,
       (SELECT count(*) FROM pg_policy p WHERE p.polrelid = c.oid) AS policies,
       pg_get_userbyid(c.relowner) AS owner
  FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
 WHERE n.nspname = 'public' AND c.relkind = 'r'
   AND EXISTS (SELECT 1 FROM pg_attribute a
                WHERE a.attrelid = c.oid AND a.attname = 'tenant_id' AND NOT a.attisdropped)
"""


def test_every_tenant_table_forces_row_level_security(owner):
    rows = owner.execute(TENANT_TABLES).fetchall()
    assert {r[0] for r in rows} >= {"reports", "api_keys", "idempotency_keys",
                                    "report_rollup_hourly", "tenant_versions"}
    lacking = [r[0] for r in rows if not (r[1] and r[2] and r[3] > 0)]
    assert lacking == [], f"tenant tables without forced RLS and a policy: {lacking}"
    assert all(r[4] != "qcc_app" for r in rows), "the app role must not own tenant tables"


def test_every_tenant_table_has_tenant_id_leading_its_primary_key(owner):
    # (the job queue's own tables, procrastinate_*, hold no tenant data of their own; nor
    # does auth_attempts: refused credentials per client address, before any tenant is known)
    rows = owner.execute("""
        SELECT c.relname, a.attname
          FROM pg_index i JOIN pg_class c ON c.oid = i.indrelid
          JOIN pg_namespace n ON n.oid = c.relnamespace
          JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum = i.indkey[0]
         WHERE i.indisprimary AND n.nspname = 'public'
           AND c.relname NOT IN ('schema_migrations', 'auth_attempts')
           AND c.relname NOT LIKE 'procrastinate%'
    """).fetchall()
    assert len(rows) >= 10 and all(column == "tenant_id" for _, column in rows), rows


def test_app_role_is_neither_superuser_nor_bypassing_rls(database):
    with psycopg.connect(database.app_url) as conn:
        row = conn.execute("SELECT rolsuper, rolbypassrls FROM pg_roles"
                           " WHERE rolname = current_user").fetchone()
    assert row == (False, False)


def test_app_role_sees_only_the_tenant_of_its_transaction(database):
    with psycopg.connect(database.app_url) as conn:
        with conn.transaction():
            conn.execute("SELECT set_config('app.tenant', 'rls-a', true)")
            conn.execute("INSERT INTO tenant_versions VALUES ('rls-a', 1)"
                         " ON CONFLICT (tenant_id) DO NOTHING")
        with conn.transaction():
            conn.execute("SELECT set_config('app.tenant', 'rls-b', true)")
            assert conn.execute("SELECT count(*) FROM tenant_versions"
                                " WHERE tenant_id = 'rls-a'").fetchone() == (0,)
        # no tenant set: nothing at all
        assert conn.execute("SELECT count(*) FROM tenant_versions").fetchone() == (0,)
        with pytest.raises(psycopg.errors.InsufficientPrivilege), conn.transaction():
            conn.execute("SELECT set_config('app.tenant', 'rls-b', true)")
            conn.execute("INSERT INTO tenant_versions VALUES ('rls-a', 2)")


def test_key_lookup_function_is_the_only_cross_tenant_read(database):
    with psycopg.connect(database.app_url) as conn:
        assert conn.execute("SELECT count(*) FROM api_keys").fetchone() == (0,)
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            conn.execute("DELETE FROM api_keys")
