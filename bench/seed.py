"""Seed the database with reports spread over the last 30 days, generated in SQL — and,
later in the run, a block of older reports for the export and retention figures.

Runs as the owner (a superuser: row-level security does not apply to it). The rows,
the hourly rollups (the one by severity follows report_rollup_hourly through its trigger,
migration 0012) and the tenant versions end up as the app would have left them:
uuid7 ids, UTC hour buckets, status/severity/counts derived like canonical.derive,
canonical bytes of the app's size with their real sha256.
"""

from __future__ import annotations

from datetime import datetime

import psycopg

# Secondary indexes are dropped for the load and rebuilt from their own definitions:
# one sorted build per index is cheaper than maintaining them row by row.
SECONDARY_INDEXES = """
SELECT indexname, indexdef FROM pg_indexes
 WHERE schemaname = 'public' AND tablename = 'reports' AND indexname <> 'reports_pkey'
"""

INSERT_REPORTS = """
INSERT INTO reports (tenant_id, id, received_at, observed_at, observed_at_raw, source, subject,
                     run_id, labels, status, severity, count_pass, count_warn, count_fail,
                     content_sha256, canonical)
SELECT tenant_id, id, received_at, observed_at,
       to_char(observed_at, 'YYYY-MM-DD"T"HH24:MI:SS"Z"'), source, subject, run_id, labels,
       status, severity, count_pass, count_warn, count_fail,
       encode(sha256(canonical), 'hex'), canonical
  FROM (
    SELECT g.*, convert_to(format('{"id":"%%s","tenant":"%%s","pad":"%%s"}', id, tenant_id,
                                  repeat('x', %(pad)s)), 'UTF8') AS canonical
      FROM (
        SELECT t.*,
               -- uuid7: 48-bit unix milliseconds, version 7, variant 10, random rest
               (lpad(to_hex((extract(epoch FROM received_at) * 1000)::bigint), 12, '0')
                || '7' || substr(h, 1, 3) || '8' || substr(h, 4, 15))::uuid AS id,
               date_trunc('second', received_at - r3 * interval '10 minutes') AS observed_at,
               (ARRAY['etl-nightly', 'etl-hourly', 'dbt-prod', 'ge-suite', 'ingest-api'])
                 [1 + i %% 5] AS source,
               'dataset:table_' || (i::bigint * 7919 %% 2000) AS subject,
               'run#' || (i / 200) AS run_id,
               jsonb_build_object(
                 'env', CASE WHEN (i / 7) %% 4 = 0 THEN 'staging' ELSE 'prod' END,
                 'team', (ARRAY['billing', 'growth', 'platform', 'risk', 'search'])
                           [1 + (i / 3) %% 5]) AS labels,
               -- 70 %% pass, 15 %% warn, 15 %% fail; severity as derive() would find it
               CASE WHEN r < 0.70 THEN 'pass' WHEN r < 0.85 THEN 'warn' ELSE 'fail' END AS status,
               CASE WHEN r < 0.70 THEN 'info'
                    WHEN r < 0.85 THEN CASE WHEN r2 < 0.5 THEN 'info' ELSE 'warn' END
                    WHEN r < 0.95 THEN CASE WHEN r2 < 0.6 THEN 'block' ELSE 'warn' END
                    ELSE 'block' END AS severity,
               CASE WHEN r < 0.70 THEN 5 WHEN r < 0.85 THEN 4 WHEN r < 0.95 THEN 3 ELSE 2 END
                 AS count_pass,
               CASE WHEN r < 0.70 THEN 0 WHEN r < 0.95 THEN 1 ELSE 0 END AS count_warn,
               CASE WHEN r < 0.85 THEN 0 WHEN r < 0.95 THEN 1 ELSE 3 END AS count_fail
          FROM (
            SELECT i, md5((i::bigint + %(offset)s)::text) AS h,
                   random() AS r, random() AS r2, random() AS r3,
                   CASE WHEN i <= %(first)s THEN %(first_tenant)s ELSE %(second_tenant)s END
                     AS tenant_id,
                   /*received_at*/ AS received_at
              FROM generate_series(1, %(total)s) AS i
          ) AS t
      ) AS g
  ) AS c
"""

# The main seed: random instants over the last 30 days.
RECENT = "now() - random() * interval '30 days'"
# The old block: evenly spread over span_days ending after_days ago, oldest first, so the
# rows reach every (…, received_at, id) index in its order (cheap on a live table).
OLD = ("now() - make_interval(days => %(after_days)s + %(span_days)s)"
       " + (i - 1)::float8 / %(total)s * make_interval(days => %(span_days)s)")

# Hour after hour, as ingest leaves the rollups (their trigger-made rows by severity too):
# a range of hours is a few heap pages.
FILL_ROLLUP = """
INSERT INTO report_rollup_hourly (tenant_id, hour, severity, status, source, n)
SELECT tenant_id, date_trunc('hour', received_at), severity, status, source, count(*)
  FROM reports
 GROUP BY 1, 2, 3, 4, 5
 ORDER BY 2, 1, 3, 4, 5
"""

ADD_ROLLUP = """
INSERT INTO report_rollup_hourly AS r (tenant_id, hour, severity, status, source, n)
SELECT tenant_id, date_trunc('hour', received_at), severity, status, source, count(*)
  FROM reports
 WHERE tenant_id = %(tenant)s AND received_at < now() - make_interval(days => %(after_days)s)
 GROUP BY 1, 2, 3, 4, 5
    ON CONFLICT (tenant_id, hour, severity, status, source) DO UPDATE SET n = r.n + EXCLUDED.n
"""

OLD_RANGE = """
SELECT min(received_at), max(received_at), count(*)
  FROM reports
 WHERE tenant_id = %(tenant)s AND received_at < now() - make_interval(days => %(after_days)s)
"""

FILL_VERSIONS = """
INSERT INTO tenant_versions (tenant_id, version)
SELECT DISTINCT tenant_id, 1 FROM reports
"""


def seed(owner_url: str, *, counts: dict[str, int], canonical_size: int) -> None:
    """counts: reports per tenant (exactly two tenants), in the order given."""
    (first_tenant, first), (second_tenant, second) = counts.items()
    # The {"id":..,"tenant":..,"pad":..} wrapper is ~80 bytes around the padding.
    pad = max(canonical_size - 80, 0)
    with psycopg.connect(owner_url, autocommit=True) as conn:
        # UTC hour buckets, like the app's sessions; the load needs no durable commit.
        conn.execute("SET TimeZone = 'UTC'")
        conn.execute("SET synchronous_commit = off")
        conn.execute("SET maintenance_work_mem = '512MB'")
        conn.execute("SELECT setseed(0.42)")
        with conn.transaction():
            indexes = conn.execute(SECONDARY_INDEXES).fetchall()
            for name, _ in indexes:
                conn.execute(f'DROP INDEX "{name}"')
            conn.execute(INSERT_REPORTS.replace("/*received_at*/", RECENT), {
                "pad": pad, "offset": 0, "total": first + second, "first": first,
                "first_tenant": first_tenant, "second_tenant": second_tenant})
            for _, definition in indexes:
                conn.execute(definition)
            conn.execute(FILL_ROLLUP)
            conn.execute(FILL_VERSIONS)
        # Hint bits, visibility map and statistics as a long-running database has them,
        # and no checkpoint of the load landing inside a measurement.
        conn.execute("VACUUM (ANALYZE) reports, report_rollup_hourly,"
                     " report_rollup_severity_hourly, tenant_versions")
        conn.execute("CHECKPOINT")


def seed_old(owner_url: str, *, tenant: str, count: int, canonical_size: int, after_days: int,
             span_days: int, offset: int) -> tuple[datetime, datetime, int]:
    """`count` more reports of `tenant`, spread evenly over `span_days` that end
    `after_days` ago, into the live table (indexes kept, no server request blocked):
    with the rollup and the tenant's version updated as ingest would. `offset` numbers
    the rows after those already seeded (their ids' random bits come from it). Returns
    the first and last received_at of the block and its size."""
    params = {"pad": max(canonical_size - 80, 0), "offset": offset, "total": count,
              "first": count, "first_tenant": tenant, "second_tenant": tenant,
              "tenant": tenant, "after_days": after_days, "span_days": span_days}
    with psycopg.connect(owner_url, autocommit=True) as conn:
        conn.execute("SET TimeZone = 'UTC'")
        conn.execute("SET synchronous_commit = off")
        conn.execute("SET maintenance_work_mem = '512MB'")
        conn.execute("SELECT setseed(0.24)")
        with conn.transaction():
            conn.execute(INSERT_REPORTS.replace("/*received_at*/", OLD), params)
            conn.execute(ADD_ROLLUP, params)
            conn.execute("UPDATE tenant_versions SET version = version + 1"
                         " WHERE tenant_id = %(tenant)s", params)
        conn.execute("VACUUM (ANALYZE) reports, report_rollup_hourly,"
                     " report_rollup_severity_hourly")
        conn.execute("CHECKPOINT")
        found = conn.execute(OLD_RANGE, params).fetchone()
    assert found is not None
    return found[0], found[1], found[2]
