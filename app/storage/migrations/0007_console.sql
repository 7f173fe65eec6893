-- Ops metrics: per-tenant request statistics and rejections per minute, written by every
-- web worker's in-process accumulator (flushed every few seconds by one upsert), so
-- /ops/metrics is correct across workers and replicas. No PII: a tenant, a minute, an
-- operation class, a status reason and counts.

CREATE TABLE ops_request_minutes (
  tenant_id      text        NOT NULL,
  minute         timestamptz NOT NULL,
  ingest         boolean     NOT NULL,  -- ingest operations (their latency is reported)
  requests       bigint      NOT NULL,
  client_errors  bigint      NOT NULL,  -- 4xx
  server_errors  bigint      NOT NULL,  -- 5xx
  -- latency histogram: counts per bucket of app.observability.OPS_LATENCY_BOUNDS, +Inf last
  latency        bigint[]    NOT NULL,
  PRIMARY KEY (tenant_id, minute, ingest)
);
CREATE INDEX ops_request_minutes_minute ON ops_request_minutes (minute);

CREATE TABLE ops_rejection_minutes (
  tenant_id  text        NOT NULL,
  minute     timestamptz NOT NULL,
  reason     text        NOT NULL,  -- the HTTP status of the refusal
  n          bigint      NOT NULL,
  PRIMARY KEY (tenant_id, minute, reason)
);
CREATE INDEX ops_rejection_minutes_minute ON ops_rejection_minutes (minute);

ALTER TABLE ops_request_minutes ENABLE ROW LEVEL SECURITY;
ALTER TABLE ops_request_minutes FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON ops_request_minutes
  USING (tenant_id = qcc_current_tenant() OR current_user = 'qcc_definer')
  WITH CHECK (tenant_id = qcc_current_tenant() OR current_user = 'qcc_definer');

ALTER TABLE ops_rejection_minutes ENABLE ROW LEVEL SECURITY;
ALTER TABLE ops_rejection_minutes FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON ops_rejection_minutes
  USING (tenant_id = qcc_current_tenant() OR current_user = 'qcc_definer')
  WITH CHECK (tenant_id = qcc_current_tenant() OR current_user = 'qcc_definer');

GRANT SELECT ON ops_request_minutes, ops_rejection_minutes TO qcc_app;
GRANT SELECT, INSERT, UPDATE, DELETE ON ops_request_minutes, ops_rejection_minutes TO qcc_definer;

-- One flush of a worker's accumulator, for every tenant it saw (the app role may only
-- add counts through this function), and the pruning of rows older than two days.
CREATE OR REPLACE FUNCTION qcc_record_ops(p_requests jsonb, p_rejections jsonb)
  RETURNS void
  LANGUAGE sql SECURITY DEFINER SET search_path = public
  AS $$
    INSERT INTO ops_request_minutes AS t
           (tenant_id, minute, ingest, requests, client_errors, server_errors, latency)
    SELECT r.tenant, r.minute, r.ingest, r.requests, r.client_errors, r.server_errors,
           ARRAY(SELECT jsonb_array_elements_text(r.latency)::bigint)
      FROM jsonb_to_recordset(p_requests) AS r(tenant text, minute timestamptz, ingest boolean,
             requests bigint, client_errors bigint, server_errors bigint, latency jsonb)
     ORDER BY 1, 2, 3
    ON CONFLICT (tenant_id, minute, ingest) DO UPDATE SET
      requests = t.requests + EXCLUDED.requests,
      client_errors = t.client_errors + EXCLUDED.client_errors,
      server_errors = t.server_errors + EXCLUDED.server_errors,
      latency = ARRAY(SELECT coalesce(a, 0) + coalesce(b, 0)
                        FROM unnest(t.latency, EXCLUDED.latency) WITH ORDINALITY AS u(a, b, i)
                       ORDER BY i);
    INSERT INTO ops_rejection_minutes AS t (tenant_id, minute, reason, n)
    SELECT r.tenant, r.minute, r.reason, r.n
      FROM jsonb_to_recordset(p_rejections) AS r(tenant text, minute timestamptz, reason text,
                                                 n bigint)
     ORDER BY 1, 2, 3
    ON CONFLICT (tenant_id, minute, reason) DO UPDATE SET n = t.n + EXCLUDED.n;
    DELETE FROM ops_request_minutes WHERE minute < now() - interval '2 days';
    DELETE FROM ops_rejection_minutes WHERE minute < now() - interval '2 days';
  $$;
REVOKE ALL ON FUNCTION qcc_record_ops(jsonb, jsonb) FROM PUBLIC;
ALTER FUNCTION qcc_record_ops(jsonb, jsonb) OWNER TO qcc_definer;
GRANT EXECUTE ON FUNCTION qcc_record_ops(jsonb, jsonb) TO qcc_app;

-- Console (BFF) sessions: the cookie's secret is stored only as its sha256, with the
-- tenant, role and key it was opened with. Every request looks the session up (no
-- per-process cache), so a logout or a revoked key ends it on every worker at once.
CREATE TABLE console_sessions (
  tenant_id      text        NOT NULL,
  secret_sha256  bytea       NOT NULL,
  key_id         uuid        NOT NULL,
  role           text        NOT NULL CHECK (role IN ('viewer', 'operator', 'auditor', 'admin')),
  created_at     timestamptz NOT NULL DEFAULT now(),
  last_seen_at   timestamptz NOT NULL DEFAULT now(),
  expires_at     timestamptz NOT NULL,
  ended_at       timestamptz,
  PRIMARY KEY (tenant_id, secret_sha256),
  CONSTRAINT console_sessions_secret_unique UNIQUE (secret_sha256)
);
CREATE INDEX console_sessions_expires ON console_sessions (expires_at);

ALTER TABLE console_sessions ENABLE ROW LEVEL SECURITY;
ALTER TABLE console_sessions FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON console_sessions
  USING (tenant_id = qcc_current_tenant() OR current_user = 'qcc_definer')
  WITH CHECK (tenant_id = qcc_current_tenant() OR current_user = 'qcc_definer');

GRANT SELECT, INSERT ON console_sessions TO qcc_app;
GRANT SELECT, UPDATE, DELETE ON console_sessions TO qcc_definer;
GRANT SELECT ON api_keys TO qcc_definer;

-- The session behind a cookie (before any tenant is known): live, not idle for longer
-- than p_idle, its key not revoked. Marks it seen (at most once a minute).
CREATE OR REPLACE FUNCTION qcc_lookup_session(p_secret_sha256 bytea, p_idle interval)
  RETURNS TABLE (tenant_id text, key_id uuid, role text, expires_at timestamptz)
  LANGUAGE sql SECURITY DEFINER SET search_path = public
  AS $$
    WITH live AS (
      SELECT s.secret_sha256, s.tenant_id, s.key_id, s.role, s.expires_at, s.last_seen_at
        FROM console_sessions s
        JOIN api_keys k ON k.tenant_id = s.tenant_id AND k.id = s.key_id
       WHERE s.secret_sha256 = p_secret_sha256 AND s.ended_at IS NULL
         AND s.expires_at > now() AND s.last_seen_at + p_idle > now()
         AND k.revoked_at IS NULL
    ), seen AS (
      UPDATE console_sessions s SET last_seen_at = now()
        FROM live
       WHERE s.secret_sha256 = live.secret_sha256
         AND live.last_seen_at < now() - interval '1 minute'
      RETURNING 1
    )
    SELECT tenant_id, key_id, role, expires_at FROM live
  $$;
REVOKE ALL ON FUNCTION qcc_lookup_session(bytea, interval) FROM PUBLIC;
ALTER FUNCTION qcc_lookup_session(bytea, interval) OWNER TO qcc_definer;
GRANT EXECUTE ON FUNCTION qcc_lookup_session(bytea, interval) TO qcc_app;

-- Logout: ends the session (audited by the trigger below); prunes long-dead sessions.
CREATE OR REPLACE FUNCTION qcc_end_session(p_secret_sha256 bytea)
  RETURNS boolean
  LANGUAGE sql SECURITY DEFINER SET search_path = public
  AS $$
    WITH ended AS (
      UPDATE console_sessions SET ended_at = now()
       WHERE secret_sha256 = p_secret_sha256 AND ended_at IS NULL
      RETURNING 1
    ), pruned AS (
      DELETE FROM console_sessions WHERE expires_at < now() - interval '7 days'
      RETURNING 1
    )
    SELECT EXISTS (SELECT 1 FROM ended)
  $$;
REVOKE ALL ON FUNCTION qcc_end_session(bytea) FROM PUBLIC;
ALTER FUNCTION qcc_end_session(bytea) OWNER TO qcc_definer;
GRANT EXECUTE ON FUNCTION qcc_end_session(bytea) TO qcc_app;

-- Audit: console logins and logouts, in the transaction of the change (never the secret).
CREATE OR REPLACE FUNCTION qcc_audit_console_session() RETURNS trigger
  LANGUAGE plpgsql AS $$
  BEGIN
    IF TG_OP = 'INSERT' THEN
      PERFORM qcc_audit(NEW.tenant_id, 'session.login', 'api_key', NEW.key_id::text,
                        jsonb_build_object('role', NEW.role, 'expires_at', NEW.expires_at));
    ELSIF NEW.ended_at IS NOT NULL AND OLD.ended_at IS NULL THEN
      PERFORM qcc_audit(NEW.tenant_id, 'session.logout', 'api_key', NEW.key_id::text,
                        jsonb_build_object('role', NEW.role));
    END IF;
    RETURN NULL;
  END
  $$;
CREATE TRIGGER console_sessions_audit AFTER INSERT OR UPDATE OF ended_at ON console_sessions
  FOR EACH ROW EXECUTE FUNCTION qcc_audit_console_session();
