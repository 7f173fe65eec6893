-- Foundation: API keys, reports, the hourly rollup, per-tenant change versions,
-- idempotency records. Every tenant table leads its keys with tenant_id and has
-- FORCEd row-level security keyed by the transaction-local setting app.tenant.

DO $$
BEGIN
  IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'qcc_app') THEN
    CREATE ROLE qcc_app NOLOGIN;
  END IF;
  -- Owns the few cross-tenant functions; nobody logs in as it or is granted it.
  IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'qcc_definer') THEN
    CREATE ROLE qcc_definer NOLOGIN;
  END IF;
  -- A non-superuser migrator (CREATEROLE) must be a member to hand functions over to it.
  IF NOT pg_has_role(current_user, 'qcc_definer', 'MEMBER') THEN
    EXECUTE format('GRANT qcc_definer TO %I', current_user);
  END IF;
END
$$;

CREATE OR REPLACE FUNCTION qcc_current_tenant() RETURNS text
  LANGUAGE sql STABLE
  AS $$ SELECT nullif(current_setting('app.tenant', true), '') $$;

CREATE TABLE api_keys (
  tenant_id      text        NOT NULL,
  id             uuid        NOT NULL,
  name           text        NOT NULL,
  role           text        NOT NULL CHECK (role IN ('viewer', 'operator', 'auditor', 'admin')),
  prefix         text        NOT NULL,
  secret_sha256  bytea       NOT NULL,
  origin         text        NOT NULL CHECK (origin IN ('env', 'api', 'cli')),
  created_at     timestamptz NOT NULL DEFAULT now(),
  last_used_at   timestamptz,
  revoked_at     timestamptz,
  PRIMARY KEY (tenant_id, id),
  CONSTRAINT api_keys_secret_unique UNIQUE (secret_sha256)
);

CREATE TABLE reports (
  tenant_id       text        NOT NULL,
  id              uuid        NOT NULL,
  received_at     timestamptz NOT NULL,
  observed_at     timestamptz NOT NULL,
  observed_at_raw text        NOT NULL,
  source          text        NOT NULL,
  subject         text        NOT NULL,
  run_id          text,
  labels          jsonb       NOT NULL DEFAULT '{}',
  status          text        NOT NULL CHECK (status IN ('pass', 'warn', 'fail')),
  severity        text        NOT NULL CHECK (severity IN ('info', 'warn', 'block')),
  count_pass      integer     NOT NULL,
  count_warn      integer     NOT NULL,
  count_fail      integer     NOT NULL,
  content_sha256  text        NOT NULL,
  canonical       bytea       NOT NULL,
  signed          boolean     NOT NULL DEFAULT false,
  PRIMARY KEY (tenant_id, id)
);
-- Keyset orders are (time, id); each filter that is common enough has its own prefix.
CREATE INDEX reports_received ON reports (tenant_id, received_at, id);
CREATE INDEX reports_observed ON reports (tenant_id, observed_at, id);
CREATE INDEX reports_severity_received ON reports (tenant_id, severity, received_at, id);
CREATE INDEX reports_status_received ON reports (tenant_id, status, received_at, id);
CREATE INDEX reports_source_received ON reports (tenant_id, source, received_at, id);
CREATE INDEX reports_subject_received ON reports (tenant_id, subject, received_at, id);
CREATE INDEX reports_labels ON reports USING gin (labels jsonb_path_ops);

-- Maintained in the ingest transaction so /timeline never scans reports when the
-- filters are only on these dimensions.
CREATE TABLE report_rollup_hourly (
  tenant_id text        NOT NULL,
  hour      timestamptz NOT NULL,
  severity  text        NOT NULL,
  status    text        NOT NULL,
  source    text        NOT NULL,
  n         bigint      NOT NULL,
  PRIMARY KEY (tenant_id, hour, severity, status, source)
);

-- Bumped in every transaction that changes what a tenant's reads can see (ingest,
-- signing, retention). Its row lock orders those commits, so a read that sees version
-- v has seen every change up to v: the ETag validator.
CREATE TABLE tenant_versions (
  tenant_id  text   PRIMARY KEY,
  version    bigint NOT NULL
);

CREATE TABLE idempotency_keys (
  tenant_id        text        NOT NULL,
  key              text        NOT NULL,
  fingerprint      text        NOT NULL,
  state            text        NOT NULL CHECK (state IN ('in_flight', 'done')),
  response_status  integer,
  response_body    bytea,
  location         text,
  created_at       timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (tenant_id, key)
);
CREATE INDEX idempotency_keys_created ON idempotency_keys (created_at);

-- Row-level security: the second wall behind the tenant id in every query.
ALTER TABLE api_keys ENABLE ROW LEVEL SECURITY;
ALTER TABLE api_keys FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON api_keys
  USING (tenant_id = qcc_current_tenant() OR current_user = 'qcc_definer')
  WITH CHECK (tenant_id = qcc_current_tenant() OR current_user = 'qcc_definer');

ALTER TABLE reports ENABLE ROW LEVEL SECURITY;
ALTER TABLE reports FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON reports
  USING (tenant_id = qcc_current_tenant()) WITH CHECK (tenant_id = qcc_current_tenant());

ALTER TABLE report_rollup_hourly ENABLE ROW LEVEL SECURITY;
ALTER TABLE report_rollup_hourly FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON report_rollup_hourly
  USING (tenant_id = qcc_current_tenant()) WITH CHECK (tenant_id = qcc_current_tenant());

ALTER TABLE tenant_versions ENABLE ROW LEVEL SECURITY;
ALTER TABLE tenant_versions FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON tenant_versions
  USING (tenant_id = qcc_current_tenant()) WITH CHECK (tenant_id = qcc_current_tenant());

ALTER TABLE idempotency_keys ENABLE ROW LEVEL SECURITY;
ALTER TABLE idempotency_keys FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON idempotency_keys
  USING (tenant_id = qcc_current_tenant() OR current_user = 'qcc_definer')
  WITH CHECK (tenant_id = qcc_current_tenant());

-- Authentication happens before the tenant is known: this one definer function may
-- look a key up by the hash of its secret across tenants, and returns nothing else.
CREATE OR REPLACE FUNCTION qcc_lookup_api_key(p_secret_sha256 bytea)
  RETURNS TABLE (tenant_id text, id uuid, role text)
  LANGUAGE sql STABLE SECURITY DEFINER SET search_path = public
  AS $$
    SELECT k.tenant_id, k.id, k.role FROM api_keys k
     WHERE k.secret_sha256 = p_secret_sha256 AND k.revoked_at IS NULL
  $$;
REVOKE ALL ON FUNCTION qcc_lookup_api_key(bytea) FROM PUBLIC;
ALTER FUNCTION qcc_lookup_api_key(bytea) OWNER TO qcc_definer;

-- Keys listed in API_KEYS are registered (hashed) at start-up; env keys no longer
-- listed are revoked. A key revoked through the API stays revoked.
CREATE OR REPLACE FUNCTION qcc_sync_env_keys(p_keys jsonb)
  RETURNS void
  LANGUAGE sql SECURITY DEFINER SET search_path = public
  AS $$
    INSERT INTO api_keys (tenant_id, id, name, role, prefix, secret_sha256, origin)
    SELECT k->>'tenant', (k->>'id')::uuid, k->>'name', k->>'role', k->>'prefix',
           decode(k->>'sha256', 'hex'), 'env'
      FROM jsonb_array_elements(p_keys) AS k
    ON CONFLICT (secret_sha256) DO UPDATE SET role = EXCLUDED.role
     WHERE api_keys.origin = 'env' AND api_keys.tenant_id = EXCLUDED.tenant_id;
    UPDATE api_keys SET revoked_at = now()
     WHERE origin = 'env' AND revoked_at IS NULL
       AND secret_sha256 <> ALL (ARRAY(SELECT decode(k->>'sha256', 'hex')
                                         FROM jsonb_array_elements(p_keys) AS k));
  $$;
REVOKE ALL ON FUNCTION qcc_sync_env_keys(jsonb) FROM PUBLIC;
ALTER FUNCTION qcc_sync_env_keys(jsonb) OWNER TO qcc_definer;

-- Pruning expired idempotency records spans tenants; only this function may.
CREATE OR REPLACE FUNCTION qcc_prune_idempotency_keys(p_older_than timestamptz)
  RETURNS bigint
  LANGUAGE sql SECURITY DEFINER SET search_path = public
  AS $$
    WITH gone AS (DELETE FROM idempotency_keys WHERE created_at < p_older_than RETURNING 1)
    SELECT count(*) FROM gone
  $$;
REVOKE ALL ON FUNCTION qcc_prune_idempotency_keys(timestamptz) FROM PUBLIC;
ALTER FUNCTION qcc_prune_idempotency_keys(timestamptz) OWNER TO qcc_definer;

GRANT USAGE ON SCHEMA public TO qcc_app, qcc_definer;
GRANT SELECT, INSERT, UPDATE ON api_keys TO qcc_definer;
GRANT SELECT, DELETE ON idempotency_keys TO qcc_definer;
GRANT EXECUTE ON FUNCTION qcc_current_tenant() TO qcc_definer;
GRANT SELECT, INSERT, UPDATE ON api_keys TO qcc_app;
GRANT SELECT, INSERT, UPDATE, DELETE ON reports, report_rollup_hourly, idempotency_keys TO qcc_app;
GRANT SELECT, INSERT, UPDATE ON tenant_versions TO qcc_app;
GRANT EXECUTE ON FUNCTION qcc_current_tenant() TO qcc_app;
GRANT EXECUTE ON FUNCTION qcc_lookup_api_key(bytea) TO qcc_app;
GRANT EXECUTE ON FUNCTION qcc_prune_idempotency_keys(timestamptz) TO qcc_app;
GRANT EXECUTE ON FUNCTION qcc_sync_env_keys(jsonb) TO qcc_app;
