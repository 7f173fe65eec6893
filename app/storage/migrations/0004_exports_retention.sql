-- Exports and retention: their state, their audit entries, and the app role's access to
-- the job queue.

-- The workers and the API (which defers jobs) use the queue as the app role.
GRANT SELECT, INSERT, UPDATE, DELETE
   ON procrastinate_workers, procrastinate_jobs, procrastinate_periodic_defers,
      procrastinate_events
   TO qcc_app;
GRANT USAGE, SELECT ON ALL SEQUENCES IN SCHEMA public TO qcc_app;
GRANT EXECUTE ON ALL FUNCTIONS IN SCHEMA public TO qcc_app;

CREATE TABLE exports (
  tenant_id     text        NOT NULL,
  id            uuid        NOT NULL,
  status        text        NOT NULL CHECK (status IN ('queued', 'running', 'succeeded', 'failed', 'expired')),
  format        text        NOT NULL CHECK (format IN ('ndjson', 'csv')),
  since         timestamptz NOT NULL,
  until         timestamptz NOT NULL,
  filters       jsonb       NOT NULL,
  request_hash  text        NOT NULL,
  created_by    uuid,
  created_at    timestamptz NOT NULL DEFAULT now(),
  started_at    timestamptz,
  finished_at   timestamptz,
  error         text,
  rows          bigint,
  bytes         bigint,
  sha256        text,
  file_name     text,
  PRIMARY KEY (tenant_id, id)
);
-- "an identical request while one runs returns that job" and "<= 2 running per tenant"
CREATE INDEX exports_active ON exports (tenant_id, request_hash) WHERE status IN ('queued', 'running');
CREATE INDEX exports_finished ON exports (finished_at) WHERE status = 'succeeded';

CREATE TABLE retention_plans (
  tenant_id        text        NOT NULL,
  plan_hash        text        NOT NULL,
  cutoff           timestamptz NOT NULL,
  include_signed   boolean     NOT NULL,
  candidates       bigint      NOT NULL,
  candidate_digest text        NOT NULL,
  created_at       timestamptz NOT NULL DEFAULT now(),
  expires_at       timestamptz NOT NULL,
  PRIMARY KEY (tenant_id, plan_hash)
);

CREATE TABLE retention_runs (
  tenant_id       text        NOT NULL,
  id              uuid        NOT NULL,
  plan_hash       text        NOT NULL,
  cutoff          timestamptz NOT NULL,
  include_signed  boolean     NOT NULL,
  deleted         bigint      NOT NULL,
  failures        jsonb       NOT NULL DEFAULT '[]',
  started_at      timestamptz NOT NULL,
  finished_at     timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (tenant_id, id)
);

ALTER TABLE exports ENABLE ROW LEVEL SECURITY;
ALTER TABLE exports FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON exports
  USING (tenant_id = qcc_current_tenant() OR current_user = 'qcc_definer')
  WITH CHECK (tenant_id = qcc_current_tenant());

ALTER TABLE retention_plans ENABLE ROW LEVEL SECURITY;
ALTER TABLE retention_plans FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON retention_plans
  USING (tenant_id = qcc_current_tenant()) WITH CHECK (tenant_id = qcc_current_tenant());

ALTER TABLE retention_runs ENABLE ROW LEVEL SECURITY;
ALTER TABLE retention_runs FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON retention_runs
  USING (tenant_id = qcc_current_tenant()) WITH CHECK (tenant_id = qcc_current_tenant());

GRANT SELECT, INSERT, UPDATE ON exports, retention_plans TO qcc_app;
GRANT DELETE ON retention_plans TO qcc_app;
GRANT SELECT, INSERT ON retention_runs TO qcc_app;
REVOKE UPDATE, DELETE ON retention_runs FROM qcc_app;
GRANT SELECT ON exports TO qcc_definer;

-- The download URL carries no key: the export is found by id alone, then the HMAC
-- (over tenant, id, sha256, expiry) decides. Only this function reads across tenants.
CREATE OR REPLACE FUNCTION qcc_find_export(p_id uuid)
  RETURNS TABLE (tenant_id text, status text, sha256 text, file_name text, format text,
                 bytes bigint)
  LANGUAGE sql STABLE SECURITY DEFINER SET search_path = public
  AS $$
    SELECT e.tenant_id, e.status, e.sha256, e.file_name, e.format, e.bytes
      FROM exports e WHERE e.id = p_id
  $$;
REVOKE ALL ON FUNCTION qcc_find_export(uuid) FROM PUBLIC;
ALTER FUNCTION qcc_find_export(uuid) OWNER TO qcc_definer;
GRANT EXECUTE ON FUNCTION qcc_find_export(uuid) TO qcc_app;

-- Files older than EXPORT_TTL are deleted by the worker, which must find them in every
-- tenant: this function lists (and marks) them.
CREATE OR REPLACE FUNCTION qcc_expire_exports(p_older_than timestamptz)
  RETURNS TABLE (tenant_id text, id uuid, file_name text)
  LANGUAGE sql SECURITY DEFINER SET search_path = public
  AS $$
    UPDATE exports e SET status = 'expired'
     WHERE e.status = 'succeeded' AND e.finished_at < p_older_than
    RETURNING e.tenant_id, e.id, e.file_name
  $$;
GRANT UPDATE ON exports TO qcc_definer;
REVOKE ALL ON FUNCTION qcc_expire_exports(timestamptz) FROM PUBLIC;
ALTER FUNCTION qcc_expire_exports(timestamptz) OWNER TO qcc_definer;
GRANT EXECUTE ON FUNCTION qcc_expire_exports(timestamptz) TO qcc_app;

-- The tenants that have data, for the scheduled retention run.
CREATE OR REPLACE FUNCTION qcc_tenants() RETURNS SETOF text
  LANGUAGE sql STABLE SECURITY DEFINER SET search_path = public
  AS $$ SELECT tenant_id FROM tenant_versions ORDER BY tenant_id $$;
REVOKE ALL ON FUNCTION qcc_tenants() FROM PUBLIC;
ALTER FUNCTION qcc_tenants() OWNER TO qcc_definer;
GRANT EXECUTE ON FUNCTION qcc_tenants() TO qcc_app;

-- Audit: every export request and every retention commit, from the same transaction.
CREATE OR REPLACE FUNCTION qcc_audit_export() RETURNS trigger
  LANGUAGE plpgsql AS $$
  BEGIN
    PERFORM qcc_audit(NEW.tenant_id, 'export.create', 'export', NEW.id::text,
                      jsonb_build_object('format', NEW.format, 'since', NEW.since,
                                         'until', NEW.until, 'filters', NEW.filters));
    RETURN NULL;
  END
  $$;
CREATE TRIGGER exports_audit AFTER INSERT ON exports
  FOR EACH ROW EXECUTE FUNCTION qcc_audit_export();

CREATE OR REPLACE FUNCTION qcc_audit_retention() RETURNS trigger
  LANGUAGE plpgsql AS $$
  BEGIN
    PERFORM qcc_audit(NEW.tenant_id, 'retention.commit', 'retention_run', NEW.id::text,
                      jsonb_build_object('plan_hash', NEW.plan_hash, 'cutoff', NEW.cutoff,
                                         'include_signed', NEW.include_signed,
                                         'deleted', NEW.deleted,
                                         'failures', jsonb_array_length(NEW.failures)));
    RETURN NULL;
  END
  $$;
CREATE TRIGGER retention_runs_audit AFTER INSERT ON retention_runs
  FOR EACH ROW EXECUTE FUNCTION qcc_audit_retention();
