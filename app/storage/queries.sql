-- Every SQL statement of the service, by name. Parameters are %(named)s. {braced} slots
-- are filled only through psycopg.sql with identifiers, keywords or the report filter
-- fragments below (report_filter_*), never with user text. Report filters are composed
-- from the fragments of the filters present, so each combination is its own prepared
-- statement with a plan that uses the right index (an "x IS NULL OR ..." form would
-- need a fresh plan on every call).

-- name: report_filter_severity
AND severity = ANY(%(severity)s::text[])

-- name: report_filter_status
AND status = ANY(%(status)s::text[])

-- name: report_filter_source
AND source = ANY(%(source)s::text[])

-- name: report_filter_subject
AND subject = ANY(%(subject)s::text[])

-- name: report_filter_severity_one
-- One value: plain equality, so the (tenant, severity, received_at, id) index also
-- gives the order and the page stops after `limit` rows (= ANY cannot).
AND severity = %(severity_one)s

-- name: report_filter_status_one
AND status = %(status_one)s

-- name: report_filter_source_one
AND source = %(source_one)s

-- name: report_filter_subject_one
AND subject = %(subject_one)s

-- name: report_filter_labels
AND labels @> %(labels)s::jsonb

-- name: report_filter_since
AND received_at >= %(since)s::timestamptz

-- name: report_filter_until
AND received_at < %(until)s::timestamptz

-- name: report_filter_after
AND ({sort_col}, id) {cmp} (%(after_time)s::timestamptz, %(after_id)s::uuid)

-- name: tenant_version
-- The tenant's change version: the ETag validator of every read (one statement, no
-- transaction needed: see migration 0006).
SELECT qcc_tenant_version(%(tenant)s);

-- name: bump_version
-- Called last in every write transaction; its row lock orders the tenant's commits.
INSERT INTO tenant_versions (tenant_id, version) VALUES (%(tenant)s, 1)
ON CONFLICT (tenant_id) DO UPDATE SET version = tenant_versions.version + 1;

-- name: ingest_write
-- One tenant's ingest write in one statement (migration 0015): the rows (one JSON array
-- written by orjson, which costs far less than adapting every value; COPY is refused
-- under RLS), their rollup, the alert outbox, the completed Idempotency-Keys (NULL: none)
-- and the change version. In autocommit it is a transaction by itself.
SELECT qcc_ingest_write(%(tenant)s, %(rows)s::jsonb, %(window)s::bigint, %(keys)s::text[],
                        %(bodies)s::bytea[], %(locations)s::text[]);

-- name: mark_signed
UPDATE reports SET signed = true WHERE tenant_id = %(tenant)s AND id = %(id)s;

-- name: get_signature
-- The stored envelope bytes and who/when, for one report.
SELECT envelope, signing_key_id, signer_key_id, signer_role, signed_at
  FROM report_signatures
 WHERE tenant_id = %(tenant)s AND report_id = %(id)s;

-- name: insert_signature
-- First signature wins; a concurrent second one inserts nothing.
INSERT INTO report_signatures (tenant_id, report_id, signing_key_id, signer_key_id,
                               signer_role, signed_at, envelope)
VALUES (%(tenant)s, %(id)s, %(signing_key_id)s, %(signer_key_id)s, %(signer_role)s,
        %(signed_at)s, %(envelope)s)
ON CONFLICT (tenant_id, report_id) DO NOTHING
RETURNING report_id;

-- name: list_audit
-- One keyset page of audit events, newest first.
SELECT id, at, action, actor_key_id, actor, target_type, target_id, details
  FROM audit_log
 WHERE tenant_id = %(tenant)s
   AND (%(actions)s::text[] IS NULL OR action = ANY(%(actions)s::text[]))
   AND (%(actor)s::uuid IS NULL OR actor_key_id = %(actor)s::uuid)
   AND (%(since)s::timestamptz IS NULL OR at >= %(since)s::timestamptz)
   AND (%(until)s::timestamptz IS NULL OR at < %(until)s::timestamptz)
   AND (%(after_at)s::timestamptz IS NULL
        OR (at, id) < (%(after_at)s::timestamptz, %(after_id)s::bigint))
 ORDER BY at DESC, id DESC
 LIMIT %(limit)s;

-- name: get_report
-- One report's canonical bytes and mutable signing state.
SELECT canonical, content_sha256, signed
  FROM reports
 WHERE tenant_id = %(tenant)s AND id = %(id)s;

-- name: bundle_source
-- What an evidence bundle is made of: the canonical bytes and the DSSE envelope (NULL while
-- the report is unsigned).
SELECT r.canonical, s.envelope
  FROM reports r
  LEFT JOIN report_signatures s ON s.tenant_id = r.tenant_id AND s.report_id = r.id
 WHERE r.tenant_id = %(tenant)s AND r.id = %(id)s;

-- name: get_report_document
-- One report's canonical bytes, signing state and, when signed, who signed when (a
-- correlated lookup by primary key, in the same statement).
SELECT canonical, content_sha256, signed,
       CASE WHEN signed THEN (
         SELECT jsonb_build_object('signing_key_id', s.signing_key_id, 'signer_key_id',
                                   s.signer_key_id, 'signer_role', s.signer_role,
                                   'signed_at', s.signed_at)
           FROM report_signatures s
          WHERE s.tenant_id = reports.tenant_id AND s.report_id = reports.id) END AS signature
  FROM reports
 WHERE tenant_id = %(tenant)s AND id = %(id)s;

-- name: list_reports_json
-- One keyset page of summaries, each compact JSON made by PostgreSQL (no per-row decoding
-- of its columns in Python); fetches page_size + 1 rows to know whether more follow. The
-- next cursor's position is read from the page's last item ({position}: nothing when the
-- item holds the sort key to the microsecond, else that column; see list_page_json). The
-- item up to content_sha256 was rendered when the row was written (`summary`, migration
-- 0014); a row written before that is rendered here by the same function. Then signed,
-- run_id and signature (the last two only when present). Keys in the contract's order;
-- every text goes through to_json (escaping). (`{{`/`}}` are literal braces: the text is
-- a psycopg.sql template.)
SELECT coalesce(summary, qcc_report_summary(reports))
       || ',"signed":' || signed
       || CASE WHEN run_id IS NULL THEN '' ELSE ',"run_id":' || to_json(run_id) END
       || CASE WHEN signed THEN coalesce((
            SELECT ',"signature":{{"signing_key_id":' || to_json(s.signing_key_id)
                   || ',"signer":{{"key_id":' || coalesce('"' || s.signer_key_id || '"', 'null')
                   || ',"role":' || to_json(s.signer_role)
                   || '}},"signed_at":"'
                   || to_char(s.signed_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24":"MI":"SS.US"Z"')
                   || '"}}'
              FROM report_signatures s
             WHERE s.tenant_id = reports.tenant_id AND s.report_id = reports.id), '')
          ELSE '' END
       || '}}' AS item{position}
  FROM reports
 WHERE tenant_id = %(tenant)s
   {filters}
 ORDER BY {sort_col} {direction}, id {direction}
 LIMIT %(page_size)s + 1;

-- name: timeline_from_rollup
-- Bucketed counts from an hourly rollup ({rollup}: the narrowest whose dimensions hold the
-- grouping and the filters); {start} is the rollup's own hour for hourly buckets,
-- date_trunc of it for daily ones.
SELECT {start} AS start, {group_col} AS key, sum(n)::bigint AS n
  FROM {rollup}
 WHERE tenant_id = %(tenant)s
   AND hour >= %(since)s::timestamptz AND hour < %(until)s::timestamptz
   {filters}
 GROUP BY 1, 2;

-- name: timeline_from_rollup_rows
-- The same when each rollup row already is one (bucket, key): hourly buckets grouped by
-- the rollup's only dimension. Its rows as they are, no aggregate of single rows.
SELECT hour AS start, {group_col} AS key, n
  FROM {rollup}
 WHERE tenant_id = %(tenant)s
   AND hour >= %(since)s::timestamptz AND hour < %(until)s::timestamptz
   {filters};

-- name: timeline_from_reports
-- Bucketed counts straight from reports (subject or label filters).
SELECT date_trunc(%(bucket)s, received_at) AS start, {group_col} AS key, count(*) AS n
  FROM reports
 WHERE tenant_id = %(tenant)s
   AND received_at >= %(since)s::timestamptz AND received_at < %(until)s::timestamptz
   {filters}
 GROUP BY 1, 2;

-- name: timeline_buckets_json
-- The timeline's buckets rendered as JSON by PostgreSQL, one text per bucket in order:
-- every bucket of [since, until) (empty ones too), its total and its counts by key.
-- {counts} is timeline_from_rollup(_rows) or timeline_from_reports. (`{{`/`}}`: literal
-- braces.)
WITH counts AS ({counts}),
per_bucket AS (
  SELECT start, sum(n)::bigint AS total, json_object_agg(key, n ORDER BY key) AS by_key
    FROM counts
   GROUP BY start)
SELECT '{{"start":"' || to_char(b AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24":"MI":"SS.US"Z"')
       || '","total":' || coalesce(p.total, 0)
       || ',"counts":' || coalesce(p.by_key::text, '{{}}') || '}}'
  FROM generate_series(%(since)s::timestamptz, %(until)s::timestamptz - %(width)s::interval,
                       %(width)s::interval) AS b
  LEFT JOIN per_bucket p ON p.start = b
 ORDER BY b;

-- -----------------------------------------------------------------------------------
-- Dashboard: what is failing, where, since when. Periods are whole UTC hours, so the
-- source aggregates come from the hourly rollup; subjects are not in the rollup.

-- name: dashboard_top_sources
-- Per source of the period: reports, failing and blocking ones, first and latest hour
-- with a failure; only sources with a failure, most failing first.
SELECT source AS key, sum(n)::bigint AS total,
       coalesce(sum(n) FILTER (WHERE status = 'fail'), 0)::bigint AS failing,
       coalesce(sum(n) FILTER (WHERE severity = 'block'), 0)::bigint AS blocking,
       min(hour) FILTER (WHERE status = 'fail') AS first_failure_hour,
       max(hour) FILTER (WHERE status = 'fail') AS last_failure_hour
  FROM report_rollup_hourly
 WHERE tenant_id = %(tenant)s
   AND hour >= %(since)s::timestamptz AND hour < %(until)s::timestamptz
 GROUP BY source
HAVING sum(n) FILTER (WHERE status = 'fail') > 0
 ORDER BY failing DESC, blocking DESC, key
 LIMIT %(limit)s;

-- name: dashboard_top_subjects
-- The same per subject, from the reports of the period (the (tenant, received_at) index).
SELECT subject AS key, count(*) AS total,
       count(*) FILTER (WHERE status = 'fail') AS failing,
       count(*) FILTER (WHERE severity = 'block') AS blocking,
       date_trunc('hour', min(received_at) FILTER (WHERE status = 'fail')) AS first_failure_hour,
       date_trunc('hour', max(received_at) FILTER (WHERE status = 'fail')) AS last_failure_hour
  FROM reports
 WHERE tenant_id = %(tenant)s
   AND received_at >= %(since)s::timestamptz AND received_at < %(until)s::timestamptz
 GROUP BY subject
HAVING count(*) FILTER (WHERE status = 'fail') > 0
 ORDER BY failing DESC, blocking DESC, key
 LIMIT %(limit)s;

-- name: dashboard_pass_rates
-- Per source of the period: reports, passing ones and their ratio, lowest ratio first.
SELECT source, sum(n)::bigint AS total,
       coalesce(sum(n) FILTER (WHERE status = 'pass'), 0)::bigint AS passing,
       round(coalesce(sum(n) FILTER (WHERE status = 'pass'), 0)::numeric / sum(n), 4)::float8
         AS pass_rate
  FROM report_rollup_hourly
 WHERE tenant_id = %(tenant)s
   AND hour >= %(since)s::timestamptz AND hour < %(until)s::timestamptz
 GROUP BY source
 ORDER BY pass_rate, total DESC, source
 LIMIT %(limit)s;

-- name: count_reports_capped
-- How many reports match a /reports filter, reading at most cap + 1 index entries.
SELECT count(*) FROM (
  SELECT 1 FROM reports WHERE tenant_id = %(tenant)s {filters} LIMIT %(cap_plus_one)s
) AS matched;

-- name: claim_idempotency_key
-- First writer of a key wins; the others read what it left.
INSERT INTO idempotency_keys (tenant_id, key, fingerprint, state)
VALUES (%(tenant)s, %(key)s, %(fingerprint)s, 'in_flight')
ON CONFLICT (tenant_id, key) DO NOTHING
RETURNING key;

-- name: get_idempotency_key
SELECT fingerprint, state, response_status, response_body, location, created_at
  FROM idempotency_keys
 WHERE tenant_id = %(tenant)s AND key = %(key)s;

-- name: reclaim_idempotency_key
-- Takes over a record that expired or whose first request died in flight.
UPDATE idempotency_keys
   SET fingerprint = %(fingerprint)s, state = 'in_flight', response_status = NULL,
       response_body = NULL, location = NULL, created_at = now()
 WHERE tenant_id = %(tenant)s AND key = %(key)s AND created_at = %(seen_created_at)s
RETURNING key;

-- name: release_idempotency_key
-- The request failed without storing anything: free the key for a retry.
DELETE FROM idempotency_keys
 WHERE tenant_id = %(tenant)s AND key = %(key)s AND state = 'in_flight';

-- name: prune_idempotency_keys
SELECT qcc_prune_idempotency_keys(%(older_than)s::timestamptz);

-- name: lookup_api_key
-- Cross-tenant by design (the tenant is what we are finding out); definer function.
SELECT tenant_id, id, role FROM qcc_lookup_api_key(%(secret_sha256)s);

-- name: set_actor
-- Who acts in this transaction, for the audit triggers.
SELECT set_config('app.actor', %(actor)s, true);

-- name: sync_env_keys
SELECT qcc_sync_env_keys(%(keys)s::jsonb);

-- name: insert_api_key
INSERT INTO api_keys (tenant_id, id, name, role, prefix, secret_sha256, origin)
VALUES (%(tenant)s, %(id)s, %(name)s, %(role)s, %(prefix)s, %(secret_sha256)s, %(origin)s)
RETURNING id, name, role, prefix, origin, created_at, last_used_at, revoked_at;

-- name: list_api_keys
SELECT id, name, role, prefix, origin, created_at, last_used_at, revoked_at
  FROM api_keys
 WHERE tenant_id = %(tenant)s
 ORDER BY created_at, id;

-- name: revoke_api_key
UPDATE api_keys SET revoked_at = now()
 WHERE tenant_id = %(tenant)s AND id = %(id)s AND revoked_at IS NULL
RETURNING id;

-- name: touch_api_key
UPDATE api_keys SET last_used_at = now()
 WHERE tenant_id = %(tenant)s AND id = %(id)s;

-- name: rotate_api_key
-- A new secret for a live key; the previous one keeps working for grace_seconds more.
UPDATE api_keys
   SET previous_secret_sha256 = secret_sha256,
       previous_valid_until = now() + make_interval(secs => %(grace_seconds)s),
       secret_sha256 = %(secret_sha256)s, prefix = %(prefix)s, rotated_at = now()
 WHERE tenant_id = %(tenant)s AND id = %(id)s AND revoked_at IS NULL
   AND origin <> 'env'  -- API_KEYS entries are rotated where they are defined
RETURNING id, name, role, prefix, origin, created_at, last_used_at, revoked_at,
          rotated_at, previous_valid_until;

-- name: count_auth_attempt
-- One attempt from a client address in the current window (every worker and replica
-- share the count); definer function: no tenant is known yet.
SELECT attempts, window_end FROM qcc_count_attempt(%(scope)s, %(address)s, %(window)s);

-- name: lock_tenant_exports
-- Serialises export requests of one tenant (the running-jobs limit and dedup).
SELECT pg_advisory_xact_lock(hashtextextended('exports:' || %(tenant)s, 0));

-- name: find_active_export
SELECT id, status FROM exports
 WHERE tenant_id = %(tenant)s AND request_hash = %(request_hash)s
   AND status IN ('queued', 'running')
 ORDER BY created_at LIMIT 1;

-- name: count_active_exports
SELECT count(*) FROM exports WHERE tenant_id = %(tenant)s AND status IN ('queued', 'running');

-- name: insert_export
INSERT INTO exports (tenant_id, id, status, format, since, until, filters, request_hash,
                     created_by)
VALUES (%(tenant)s, %(id)s, 'queued', %(format)s, %(since)s, %(until)s, %(filters)s,
        %(request_hash)s, %(created_by)s);

-- name: defer_job
-- Enqueue a job through procrastinate's own SQL API, inside the caller's transaction:
-- the job exists if and only if the row that needs it was committed.
SELECT unnest(procrastinate_defer_jobs_v1(ARRAY[ROW(
         %(queue)s, %(task)s, 0, %(lock)s, NULL, %(args)s::jsonb, NULL
       )::procrastinate_job_to_defer_v1]));

-- name: get_export
SELECT id, status, format, since, until, filters, created_by, created_at, started_at,
       finished_at, error, rows, bytes, sha256, file_name
  FROM exports WHERE tenant_id = %(tenant)s AND id = %(id)s;

-- name: list_exports
-- One keyset page of the tenant's exports, newest first; fetches limit + 1 rows.
SELECT id, status, format, since, until, filters, created_by, created_at, started_at,
       finished_at, error, rows, bytes, sha256, file_name
  FROM exports
 WHERE tenant_id = %(tenant)s
   AND (%(after_at)s::timestamptz IS NULL
        OR (created_at, id) < (%(after_at)s::timestamptz, %(after_id)s::uuid))
 ORDER BY created_at DESC, id DESC
 LIMIT %(limit)s;

-- name: start_export
-- Claims the export for this attempt; a retried job starts again from scratch.
UPDATE exports SET status = 'running', started_at = now(), error = NULL
 WHERE tenant_id = %(tenant)s AND id = %(id)s AND status IN ('queued', 'running')
RETURNING format, since, until, filters;

-- name: finish_export
UPDATE exports SET status = 'succeeded', finished_at = now(), rows = %(rows)s,
                   bytes = %(bytes)s, sha256 = %(sha256)s, file_name = %(file_name)s
 WHERE tenant_id = %(tenant)s AND id = %(id)s AND status = 'running';

-- name: fail_export
UPDATE exports SET status = 'failed', finished_at = now(), error = %(error)s
 WHERE tenant_id = %(tenant)s AND id = %(id)s AND status IN ('queued', 'running');

-- name: find_export
-- By id alone, for the signed download URL (definer function).
SELECT tenant_id, status, sha256, file_name, format, bytes FROM qcc_find_export(%(id)s);

-- name: expire_exports
SELECT tenant_id, id, file_name FROM qcc_expire_exports(%(older_than)s);

-- name: export_rows
-- The rows of one export, streamed from a server-side cursor in (received_at, id) order:
-- the canonical report (NDJSON) or the summary columns (CSV, labels as JSON text).
SELECT {columns}
  FROM reports
 WHERE tenant_id = %(tenant)s
   AND received_at >= %(since)s AND received_at < %(until)s
   {filters}
 ORDER BY received_at, id;

-- name: tenants
SELECT qcc_tenants();

-- name: retention_candidates
-- The plan's candidate set at a cutoff: its size and an order-independent digest, so a
-- commit can tell whether the set changed since the dry run.
SELECT count(*) AS candidates,
       coalesce(sum(hashtextextended(id::text, 0)::numeric), 0)::text AS digest,
       (SELECT count(*) FROM reports h
         WHERE h.tenant_id = %(tenant)s AND h.received_at < %(cutoff)s AND h.signed
           AND NOT %(include_signed)s) AS held_signed
  FROM reports
 WHERE tenant_id = %(tenant)s AND received_at < %(cutoff)s
   AND (%(include_signed)s OR NOT signed);

-- name: save_retention_plan
INSERT INTO retention_plans (tenant_id, plan_hash, cutoff, include_signed, candidates,
                             candidate_digest, expires_at)
VALUES (%(tenant)s, %(plan_hash)s, %(cutoff)s, %(include_signed)s, %(candidates)s,
        %(digest)s, %(expires_at)s)
ON CONFLICT (tenant_id, plan_hash) DO UPDATE SET expires_at = EXCLUDED.expires_at;

-- name: get_retention_plan
SELECT cutoff, include_signed, candidates, candidate_digest, expires_at
  FROM retention_plans WHERE tenant_id = %(tenant)s AND plan_hash = %(plan_hash)s;

-- name: drop_retention_plan
DELETE FROM retention_plans WHERE tenant_id = %(tenant)s AND plan_hash = %(plan_hash)s;

-- name: delete_retention_batch
-- One short transaction's worth: the oldest candidates go, and the hourly rollup loses
-- exactly what they counted.
WITH batch AS (
  SELECT id FROM reports
   WHERE tenant_id = %(tenant)s AND received_at < %(cutoff)s
     AND (%(include_signed)s OR NOT signed)
   ORDER BY received_at, id
   LIMIT %(limit)s
   FOR UPDATE SKIP LOCKED
), gone AS (
  DELETE FROM reports r USING batch
   WHERE r.tenant_id = %(tenant)s AND r.id = batch.id
  RETURNING r.received_at, r.severity, r.status, r.source
), counted AS (
  SELECT date_trunc('hour', received_at) AS hour, severity, status, source, count(*) AS n
    FROM gone GROUP BY 1, 2, 3, 4
), rolled AS (
  UPDATE report_rollup_hourly u SET n = u.n - counted.n
    FROM counted
   WHERE u.tenant_id = %(tenant)s AND u.hour = counted.hour AND u.severity = counted.severity
     AND u.status = counted.status AND u.source = counted.source
  RETURNING 1
)
SELECT (SELECT count(*) FROM gone) AS deleted, (SELECT count(*) FROM rolled) AS rollups;

-- name: insert_retention_run
INSERT INTO retention_runs (tenant_id, id, plan_hash, cutoff, include_signed, deleted,
                            failures, started_at)
VALUES (%(tenant)s, %(id)s, %(plan_hash)s, %(cutoff)s, %(include_signed)s, %(deleted)s,
        %(failures)s, %(started_at)s);

-- ===================================================================================
-- Alerts: rules, the outbox (dedup windows), notifications, per-channel deliveries.
-- The dedup key is hash(tenant, rule, window): the first 32 hex digits of the sha256 of
-- "tenant|rule id|window start (epoch seconds)|window length".

-- name: enqueue_system_alert
-- A check's alert (tenant ':system'): the same window and dedup key as a rule's.
INSERT INTO alert_windows AS w (tenant_id, rule_id, window_start, window_end, dedup_key,
                                matched, first_match, level, last_match_at)
SELECT %(tenant)s, %(rule_id)s::uuid, s.window_start,
       s.window_start + make_interval(secs => %(window)s::bigint),
       left(encode(sha256(convert_to(%(tenant)s || '|' || %(rule_id)s::text || '|'
                                     || extract(epoch FROM s.window_start)::bigint::text || '|'
                                     || %(window)s::bigint::text, 'UTF8')), 'hex'), 32),
       1, %(facts)s::jsonb, %(level)s, now()
  FROM (SELECT to_timestamp(floor(extract(epoch FROM now()) / %(window)s::bigint)
                            * %(window)s::bigint) AS window_start) s
ON CONFLICT (tenant_id, rule_id, window_start) DO UPDATE
   SET matched = w.matched + 1, last_match_at = now();

-- name: sync_system_alert_rule
-- The operators' channels (from the environment) as an ordinary rule of the tenant
-- ':system', one per check and level; it matches no report (an empty severity list):
-- its windows are raised by the checks.
INSERT INTO alert_rules (tenant_id, id, name, match_severity, channels, secrets)
VALUES (%(tenant)s, %(id)s, %(name)s, '{}', %(channels)s, %(secrets)s)
ON CONFLICT (tenant_id, id) DO UPDATE
   SET name = EXCLUDED.name, match_severity = '{}', channels = EXCLUDED.channels,
       fallback = NULL, secrets = EXCLUDED.secrets, deleted_at = NULL;

-- name: alert_tenants_with_work
-- Cross-tenant by design (which tenants have windows to announce); definer function.
SELECT qcc_alert_tenants_with_work(make_interval(secs => %(grace)s::float8));

-- name: lock_due_alert_windows
-- Windows with something to announce: a first match not yet sent, or a closed window
-- with matches not yet summarised. SKIP LOCKED: each goes to one announcing job.
SELECT rule_id, window_start, window_end, dedup_key, matched, announced, first_match, level
  FROM alert_windows
 WHERE tenant_id = %(tenant)s AND matched > announced
   AND (announced = 0 OR window_end + make_interval(secs => %(grace)s::float8) <= now())
 ORDER BY window_start, rule_id
 LIMIT %(limit)s
   FOR UPDATE SKIP LOCKED;

-- name: set_alert_window_announced
UPDATE alert_windows w SET announced = a.announced
  FROM unnest(%(rule_ids)s::uuid[], %(starts)s::timestamptz[], %(announced)s::bigint[])
       AS a(rule_id, window_start, announced)
 WHERE w.tenant_id = %(tenant)s AND w.rule_id = a.rule_id AND w.window_start = a.window_start;

-- name: insert_alert_notification
INSERT INTO alert_notifications (tenant_id, id, rule_id, rule_name, dedup_key, kind, level,
                                 summary, matches, window_start, window_end, details)
VALUES (%(tenant)s, %(id)s, %(rule_id)s, %(rule_name)s, %(dedup_key)s, %(kind)s, %(level)s,
        %(summary)s, %(matches)s, %(window_start)s, %(window_end)s, %(details)s);

-- name: insert_alert_delivery
-- One per channel; a channel already given this notification (the fallback, when a
-- second channel fails) is not given it again.
INSERT INTO alert_deliveries (tenant_id, id, notification_id, rule_id, channel_no,
                              channel_type, target)
VALUES (%(tenant)s, %(id)s, %(notification_id)s, %(rule_id)s, %(channel_no)s,
        %(channel_type)s, %(target)s)
ON CONFLICT ON CONSTRAINT alert_deliveries_channel_once DO NOTHING
RETURNING id;

-- name: start_alert_delivery
-- One attempt begins (its job runs). A delivery already settled (delivered, handed to
-- the fallback, dead, cancelled) is not sent again; one left 'sending' by a worker that
-- died mid-send is (the queue retries that worker's job: at least once, same id).
UPDATE alert_deliveries d
   SET status = 'sending', attempts = d.attempts + 1, updated_at = now()
  FROM alert_notifications n
 WHERE d.tenant_id = %(tenant)s AND d.id = %(id)s AND d.status IN ('pending', 'sending')
   AND n.tenant_id = %(tenant)s AND n.id = d.notification_id
RETURNING d.id, d.notification_id, d.rule_id, d.channel_no, d.channel_type, d.target,
          d.attempts, n.rule_name, n.dedup_key, n.kind, n.level, n.summary, n.matches,
          n.window_start, n.window_end, n.details, n.created_at;

-- name: alert_rule_secrets
-- The encrypted channel configurations of some rules (deleted ones too: a delivery
-- claimed just before the delete still finishes).
SELECT id, secrets, fallback IS NOT NULL AS has_fallback
  FROM alert_rules WHERE tenant_id = %(tenant)s AND id = ANY(%(ids)s::uuid[]);

-- name: sealed_alert_rules
-- qc-collector rotate-encryption: every rule of the tenant, locked while re-sealed.
SELECT id, secrets FROM alert_rules WHERE tenant_id = %(tenant)s ORDER BY id FOR UPDATE;

-- name: reseal_alert_rule
UPDATE alert_rules SET secrets = %(secrets)s WHERE tenant_id = %(tenant)s AND id = %(id)s;

-- name: audit_alert_reseal
SELECT qcc_audit(%(tenant)s, 'encryption.rotate', 'alert_rules', 'all', %(details)s);

-- name: active_alert_rules_by_id
SELECT id, name, channels, fallback
  FROM alert_rules
 WHERE tenant_id = %(tenant)s AND id = ANY(%(ids)s::uuid[]) AND deleted_at IS NULL;

-- name: record_alert_delivery
-- The outcome of one attempt; when pending again, next_attempt_at is when its retry job
-- is scheduled.
UPDATE alert_deliveries
   SET status = %(status)s, last_status = %(last_status)s,
       last_error = coalesce(%(last_error)s, last_error),
       next_attempt_at = now() + make_interval(secs => %(delay)s::float8),
       delivered_at = CASE WHEN %(status)s = 'delivered' THEN now() END,
       updated_at = now()
 WHERE tenant_id = %(tenant)s AND id = %(id)s AND status = 'sending'
RETURNING id;

-- name: count_active_alert_rules
SELECT count(*) FROM alert_rules WHERE tenant_id = %(tenant)s AND deleted_at IS NULL;

-- name: lock_tenant_alert_rules
-- Serialises rule creation of one tenant (the active-rule limit).
SELECT pg_advisory_xact_lock(hashtextextended('alert-rules:' || %(tenant)s, 0));

-- name: insert_alert_rule
INSERT INTO alert_rules (tenant_id, id, name, match_severity, match_status, match_source,
                         match_subject, match_labels, channels, fallback, secrets, created_by)
VALUES (%(tenant)s, %(id)s, %(name)s, %(severity)s, %(status)s, %(source)s, %(subject)s,
        %(labels)s, %(channels)s, %(fallback)s, %(secrets)s, %(created_by)s)
RETURNING id, name, match_severity, match_status, match_source, match_subject, match_labels,
          channels, fallback, created_by, created_at;

-- name: list_alert_rules
SELECT id, name, match_severity, match_status, match_source, match_subject, match_labels,
       channels, fallback, created_by, created_at
  FROM alert_rules
 WHERE tenant_id = %(tenant)s AND deleted_at IS NULL
 ORDER BY created_at, id;

-- name: delete_alert_rule
UPDATE alert_rules SET deleted_at = now()
 WHERE tenant_id = %(tenant)s AND id = %(id)s AND deleted_at IS NULL
RETURNING id;

-- name: cancel_alert_rule_work
-- A deleted rule sends nothing more: its waiting deliveries are cancelled and its
-- windows count as announced.
WITH cancelled AS (
  UPDATE alert_deliveries SET status = 'cancelled', updated_at = now()
   WHERE tenant_id = %(tenant)s AND rule_id = %(id)s AND status = 'pending'
  RETURNING 1
)
UPDATE alert_windows SET announced = matched
 WHERE tenant_id = %(tenant)s AND rule_id = %(id)s AND matched > announced;

-- name: list_alert_notifications
-- One keyset page of the delivery log, newest first, each with its deliveries (one
-- statement whatever the page size).
SELECT n.id, n.rule_id, n.rule_name, n.dedup_key, n.kind, n.level, n.summary, n.matches,
       n.window_start, n.window_end, n.created_at, d.status, d.attempts, d.last_error,
       d.deliveries
  FROM alert_notifications n
  CROSS JOIN LATERAL (
    SELECT CASE WHEN bool_or(x.status IN ('pending', 'sending')) THEN 'pending'
                WHEN bool_or(x.status = 'dead') THEN 'dead'
                WHEN bool_or(x.status = 'cancelled') THEN 'cancelled'
                ELSE 'delivered' END AS status,
           coalesce(sum(x.attempts), 0)::bigint AS attempts,
           (array_agg(x.last_error ORDER BY x.updated_at DESC)
              FILTER (WHERE x.last_error IS NOT NULL))[1] AS last_error,
           coalesce(jsonb_agg(jsonb_build_object(
               'channel', x.channel_no, 'type', x.channel_type, 'target', x.target,
               'fallback', x.channel_no < 0, 'status', x.status, 'attempts', x.attempts,
               'last_error', x.last_error, 'last_status', x.last_status,
               'next_attempt_at', CASE WHEN x.status IN ('pending', 'sending')
                                       THEN x.next_attempt_at END,
               'delivered_at', x.delivered_at)
             ORDER BY x.channel_no < 0, x.channel_no) FILTER (WHERE x.id IS NOT NULL),
             '[]') AS deliveries
      FROM alert_deliveries x
     WHERE x.tenant_id = %(tenant)s AND x.notification_id = n.id
  ) d
 WHERE n.tenant_id = %(tenant)s
   AND (%(rule_id)s::uuid IS NULL OR n.rule_id = %(rule_id)s::uuid)
   AND (%(status)s::text IS NULL OR d.status = %(status)s::text)
   AND (%(after_at)s::timestamptz IS NULL
        OR (n.created_at, n.id) < (%(after_at)s::timestamptz, %(after_id)s::uuid))
 ORDER BY n.created_at DESC, n.id DESC
 LIMIT %(limit)s;

-- name: alert_dead_since
SELECT qcc_alert_dead_since(%(since)s::timestamptz);

-- name: prune_alerts
SELECT qcc_prune_alerts(%(older_than)s::timestamptz);

-- name: database_size
SELECT pg_database_size(current_database());

-- name: metrics_snapshot
-- Service-wide gauges for /metrics (connections, job queues, workers, alert deliveries,
-- export volume) in one statement; counts only, no tenant data.
SELECT qcc_metrics_snapshot();

-- name: record_ops
SELECT qcc_record_ops(%(requests)s::jsonb, %(rejections)s::jsonb);

-- name: ops_metrics
-- The caller's tenant's operational numbers in one statement (RLS-scoped transaction):
-- counts only, never a subject, message, run id or label value.
SELECT jsonb_build_object(
  'reports_last_hour', (
    SELECT coalesce(jsonb_object_agg(severity, n), '{}') FROM (
      SELECT severity, count(*) AS n FROM reports
       WHERE tenant_id = %(tenant)s AND received_at >= %(now)s::timestamptz - interval '1 hour'
       GROUP BY severity) s),
  'reports_last_24h', (
    SELECT coalesce(jsonb_object_agg(severity, n), '{}') FROM (
      SELECT severity, sum(n)::bigint AS n FROM report_rollup_hourly
       WHERE tenant_id = %(tenant)s
         AND hour >= date_trunc('hour', %(now)s::timestamptz - interval '23 hours')
       GROUP BY severity) s),
  'exports', (
    SELECT coalesce(jsonb_object_agg(status, n), '{}') FROM (
      SELECT status, count(*) AS n FROM exports WHERE tenant_id = %(tenant)s
       GROUP BY status) s),
  'notification_backlog', (
    SELECT count(*) FROM alert_deliveries
     WHERE tenant_id = %(tenant)s AND status IN ('pending', 'sending')),
  'dead_letters', (
    SELECT count(*) FROM alert_deliveries WHERE tenant_id = %(tenant)s AND status = 'dead'),
  'dead_letters_last_24h', (
    SELECT count(*) FROM alert_deliveries
     WHERE tenant_id = %(tenant)s AND status = 'dead'
       AND updated_at >= %(now)s::timestamptz - interval '24 hours'),
  'rejected_last_hour', (
    SELECT coalesce(jsonb_object_agg(reason, n), '{}') FROM (
      SELECT reason, sum(n)::bigint AS n FROM ops_rejection_minutes
       WHERE tenant_id = %(tenant)s AND minute >= %(window_start)s::timestamptz
       GROUP BY reason) s),
  'requests', (
    SELECT jsonb_build_object(
             'requests', coalesce(sum(requests), 0)::bigint,
             'client_errors', coalesce(sum(client_errors), 0)::bigint,
             'server_errors', coalesce(sum(server_errors), 0)::bigint)
      FROM ops_request_minutes
     WHERE tenant_id = %(tenant)s AND minute >= %(window_start)s::timestamptz),
  'ingest_latency', (
    SELECT coalesce(jsonb_agg(n ORDER BY i), '[]') FROM (
      SELECT u.i, sum(u.n)::bigint AS n
        FROM ops_request_minutes m
        CROSS JOIN LATERAL unnest(m.latency) WITH ORDINALITY AS u(n, i)
       WHERE m.tenant_id = %(tenant)s AND m.ingest
         AND m.minute >= %(window_start)s::timestamptz
         -- rows of another bucket layout (written before an upgrade) are left out
         AND cardinality(m.latency) = %(latency_slots)s
       GROUP BY u.i) h)
);

-- name: insert_console_session
INSERT INTO console_sessions (secret_sha256, tenant_id, key_id, role, expires_at)
VALUES (%(secret_sha256)s, %(tenant)s, %(key_id)s, %(role)s, %(expires_at)s)
RETURNING expires_at;

-- name: lookup_console_session
SELECT tenant_id, key_id, role, expires_at
  FROM qcc_lookup_session(%(secret_sha256)s, make_interval(secs => %(idle_seconds)s));

-- name: end_console_session
SELECT qcc_end_session(%(secret_sha256)s);
