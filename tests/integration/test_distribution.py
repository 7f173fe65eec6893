"""The schema stays distributable by tenant (Citus: `create_distributed_table(t, 'tenant_id')`).

A distributed table's primary key and unique indexes must contain the distribution column
(we require it to LEAD, so a tenant's rows are one index range), and a foreign key between
distributed tables must include it, so no key ever joins two tenants. Tables that are not
distributed are named here with the reason; docs/SCALING.md gives the same list."""

from __future__ import annotations

import psycopg
import pytest

# Replicated to every node (Citus reference tables): looked up by a secret's hash before
# the tenant is known, and the hash must be unique across tenants (the secret names the
# tenant), which a distributed table cannot enforce.
REFERENCE_TABLES = {
    "api_keys": "authentication looks a key up by secret hash before the tenant is known;"
                " the hash is unique across tenants",
    "console_sessions": "the session cookie is looked up by hash before the tenant is known;"
                        " unique across tenants",
}
# Tenant-less tables that stay on the coordinator (never distributed).
LOCAL_TABLES = {
    "schema_migrations": "migration bookkeeping of the whole database",
    "procrastinate_jobs": "the job queue (procrastinate): claimed with SKIP LOCKED, LISTEN/NOTIFY",
    "procrastinate_events": "the job queue's event log",
    "procrastinate_periodic_defers": "the job queue's periodic-task bookkeeping",
    "procrastinate_workers": "the job queue's worker heartbeats",
    "auth_attempts": "refused credentials per client address and minute, counted before any"
                     " tenant is known (migration 0008)",
}

TABLES = """
SELECT c.oid, c.relname,
       EXISTS (SELECT 1 FROM pg_attribute a WHERE a.attrelid = c.oid
                  AND a.attname = 'tenant_id' AND NOT a.attisdropped)
  FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
 WHERE n.nspname = 'public' AND c.relkind IN ('r', 'p') AND NOT c.relispartition
"""
UNIQUE_INDEXES = """
SELECT c.relname, i.indexrelid::regclass::text, a.attname
  FROM pg_index i JOIN pg_class c ON c.oid = i.indrelid
  JOIN pg_namespace n ON n.oid = c.relnamespace
  LEFT JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum = i.indkey[0]
 WHERE n.nspname = 'public' AND (i.indisunique OR i.indisprimary)
"""
FOREIGN_KEYS = """
SELECT f.conname, f.conrelid::regclass::text, f.confrelid::regclass::text,
       ARRAY(SELECT a.attname FROM unnest(f.conkey) WITH ORDINALITY k(n, o)
               JOIN pg_attribute a ON a.attrelid = f.conrelid AND a.attnum = k.n ORDER BY k.o),
       ARRAY(SELECT a.attname FROM unnest(f.confkey) WITH ORDINALITY k(n, o)
               JOIN pg_attribute a ON a.attrelid = f.confrelid AND a.attnum = k.n ORDER BY k.o)
  FROM pg_constraint f
 WHERE f.contype = 'f' AND f.connamespace = 'public'::regnamespace
"""


def violations(conn: psycopg.Connection) -> list[str]:
    """Every way the schema stops being distributable by tenant_id, one line each."""
    found: list[str] = []
    not_distributed = REFERENCE_TABLES.keys() | LOCAL_TABLES.keys()
    tables = {name: has_tenant for _, name, has_tenant in conn.execute(TABLES).fetchall()}
    distributed = {name for name in tables if name not in not_distributed}
    for name in sorted(distributed):
        if not tables[name]:
            found.append(f"{name}: no tenant_id column and not declared reference/local data")
    for name in sorted(not_distributed - tables.keys()):
        found.append(f"{name}: declared but no such table (update the lists)")
    for table, index, first in conn.execute(UNIQUE_INDEXES).fetchall():
        if table in distributed and first != "tenant_id":
            found.append(f"{table}: unique index {index} leads with {first or 'an expression'},"
                         " not tenant_id")
    for name, source, target, columns, referenced in conn.execute(FOREIGN_KEYS).fetchall():
        if source in distributed and target in distributed:
            pairs = dict(zip(columns, referenced, strict=True))
            if pairs.get("tenant_id") != "tenant_id":
                found.append(f"{source}: foreign key {name} to {target} does not match"
                             " tenant_id to tenant_id (it can cross tenants)")
        elif target in distributed:
            found.append(f"{source}: foreign key {name} from a non-distributed table to"
                         f" the distributed {target}")
    return found


def test_every_key_leads_with_tenant_id_and_no_foreign_key_crosses_tenants(owner):
    tables = {row[1] for row in owner.execute(TABLES).fetchall()}
    assert {"reports", "report_signatures", "alert_deliveries", "audit_log"} <= tables
    assert violations(owner) == []


@pytest.mark.parametrize("ddl, expected", [
    ("CREATE TABLE probe_pk (id uuid PRIMARY KEY, tenant_id text NOT NULL)",
     "probe_pk: unique index probe_pk_pkey leads with id, not tenant_id"),
    ("CREATE TABLE probe_unique (tenant_id text, name text, PRIMARY KEY (tenant_id, name));"
     " CREATE UNIQUE INDEX probe_unique_name ON probe_unique (name)",
     "probe_unique: unique index probe_unique_name leads with name, not tenant_id"),
    ("CREATE TABLE probe_global (id int PRIMARY KEY)",
     "probe_global: no tenant_id column and not declared reference/local data"),
    ("CREATE TABLE probe_fk (tenant_id text, id uuid, report_tenant text, PRIMARY KEY (tenant_id, id),"
     " FOREIGN KEY (report_tenant, id) REFERENCES reports (tenant_id, id))",
     "probe_fk: foreign key probe_fk_report_tenant_id_fkey to reports does not match"
     " tenant_id to tenant_id (it can cross tenants)"),
])
def test_the_check_catches_each_kind_of_violation(owner, ddl, expected):
    with owner.transaction(force_rollback=True):
        owner.execute(ddl)
        assert expected in violations(owner)
