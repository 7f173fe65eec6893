-- The whole write of one group-commit flush for one tenant as ONE statement: the scope,
-- the reports, their hourly rollup, the alert outbox and the tenant's change version.
-- Sent as seven statements in a pipelined transaction (BEGIN, set_config, four writes,
-- COMMIT), the flush cost the API worker ~850 µs of CPU in psycopg's pipeline for a
-- single report and ~1,250 µs for eight, PostgreSQL ~1,000-1,250 µs; as one call of this
-- function 350-710 µs and 825-950 µs (5 rounds of 400 flushes, medians, one backend).
-- Called alone in autocommit it is its own transaction: no BEGIN and COMMIT round trips.
-- PL/pgSQL keeps each statement's plan for the session.
--
-- SECURITY INVOKER (the default): it runs as the app role, under row-level security, and
-- its set_config is transaction-local, as the pipelined statements' was. The rollup is
-- counted here from the rows themselves (the hour of received_at in UTC, severity,
-- status, source), sorted so concurrent writers lock its rows in one order. p_done holds
-- the Idempotency-Keys this write completes (their answers stored in the same
-- transaction as the reports they describe); NULL when there are none.
CREATE OR REPLACE FUNCTION qcc_ingest_write(p_tenant text, p_rows jsonb, p_window bigint,
                                            p_keys text[], p_bodies bytea[],
                                            p_locations text[])
  RETURNS void LANGUAGE plpgsql VOLATILE
  AS $$
DECLARE
  v_ids uuid[];
BEGIN
  PERFORM set_config('app.tenant', p_tenant, true);

  WITH inserted AS (
    INSERT INTO reports (tenant_id, id, received_at, observed_at, observed_at_raw, source,
                         subject, run_id, labels, status, severity, count_pass, count_warn,
                         count_fail, content_sha256, canonical)
    SELECT p_tenant, r.id, r.received_at, r.observed_at, r.observed_at_raw, r.source,
           r.subject, r.run_id, r.labels, r.status, r.severity, r.count_pass, r.count_warn,
           r.count_fail, r.content_sha256, convert_to(r.canonical, 'UTF8')
      FROM jsonb_to_recordset(p_rows) AS r(
             id uuid, received_at timestamptz, observed_at timestamptz, observed_at_raw text,
             source text, subject text, run_id text, labels jsonb, status text,
             severity text, count_pass int, count_warn int, count_fail int,
             content_sha256 text, canonical text)
    RETURNING id)
  SELECT array_agg(id) INTO v_ids FROM inserted;

  INSERT INTO report_rollup_hourly (tenant_id, hour, severity, status, source, n)
  SELECT p_tenant, date_trunc('hour', r.received_at, 'UTC'), r.severity, r.status, r.source,
         count(*)
    FROM jsonb_to_recordset(p_rows)
         AS r(received_at timestamptz, severity text, status text, source text)
   GROUP BY 2, 3, 4, 5
   ORDER BY 2, 3, 4, 5
  ON CONFLICT (tenant_id, hour, severity, status, source)
  DO UPDATE SET n = report_rollup_hourly.n + EXCLUDED.n;

  -- The outbox: each active rule of the tenant that a report of this write matches adds
  -- its matches to the rule's epoch-aligned window (floor(received_at / window)). The
  -- EXISTS is a one-time filter, so a tenant without rules pays one index probe; windows
  -- are upserted in key order so concurrent writers lock them in one order.
  INSERT INTO alert_windows AS w (tenant_id, rule_id, window_start, window_end, dedup_key,
                                  matched, first_match, last_match_at)
  SELECT p_tenant, m.rule_id, m.window_start, m.window_start + make_interval(secs => p_window),
         left(encode(sha256(convert_to(p_tenant || '|' || m.rule_id::text || '|'
                                       || extract(epoch FROM m.window_start)::bigint::text
                                       || '|' || p_window::text, 'UTF8')), 'hex'), 32),
         m.n, m.first_match, m.last_at
    FROM (
      SELECT ru.id AS rule_id,
             to_timestamp(floor(extract(epoch FROM r.received_at) / p_window) * p_window)
               AS window_start,
             count(*) AS n,
             (array_agg(jsonb_build_object(
                'id', r.id, 'source', r.source, 'subject', r.subject, 'run_id', r.run_id,
                'severity', r.severity, 'status', r.status, 'labels', r.labels,
                'received_at', r.received_at, 'observed_at', r.observed_at_raw,
                'counts', jsonb_build_object('pass', r.count_pass, 'warn', r.count_warn,
                                             'fail', r.count_fail))
                ORDER BY r.received_at, r.id))[1] AS first_match,
             max(r.received_at) AS last_at
        FROM alert_rules ru
        JOIN reports r ON r.tenant_id = ru.tenant_id
       WHERE EXISTS (SELECT 1 FROM alert_rules x
                      WHERE x.tenant_id = p_tenant AND x.deleted_at IS NULL)
         AND ru.tenant_id = p_tenant AND ru.deleted_at IS NULL
         AND r.tenant_id = p_tenant AND r.id = ANY(v_ids)
         AND (ru.match_severity IS NULL OR r.severity = ANY(ru.match_severity))
         AND (ru.match_status IS NULL OR r.status = ANY(ru.match_status))
         AND (ru.match_source IS NULL OR r.source = ANY(ru.match_source))
         AND (ru.match_subject IS NULL OR r.subject = ANY(ru.match_subject))
         AND r.labels @> ru.match_labels
       GROUP BY 1, 2
    ) m
   ORDER BY m.rule_id, m.window_start
  ON CONFLICT (tenant_id, rule_id, window_start) DO UPDATE
     SET matched = w.matched + EXCLUDED.matched,
         last_match_at = greatest(w.last_match_at, EXCLUDED.last_match_at);

  IF p_keys IS NOT NULL THEN
    UPDATE idempotency_keys k
       SET state = 'done', response_status = 201, response_body = d.body,
           location = d.location
      FROM unnest(p_keys, p_bodies, p_locations) AS d(key, body, location)
     WHERE k.tenant_id = p_tenant AND k.key = d.key;
  END IF;

  -- last: its row lock orders the tenant's commits
  INSERT INTO tenant_versions (tenant_id, version) VALUES (p_tenant, 1)
  ON CONFLICT (tenant_id) DO UPDATE SET version = tenant_versions.version + 1;
END
$$;
REVOKE ALL ON FUNCTION qcc_ingest_write(text, jsonb, bigint, text[], bytea[], text[]) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION qcc_ingest_write(text, jsonb, bigint, text[], bytea[], text[]) TO qcc_app;
