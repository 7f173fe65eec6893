-- Trust: report signatures and the append-only audit log.
--
-- Audit entries are written by triggers in the transaction of the action itself, so
-- no code path (API, CLI, a bulk statement) can skip them. The acting key is read from
-- the transaction-local settings app.actor_key and app.actor (set by the services).

CREATE TABLE report_signatures (
  tenant_id       text        NOT NULL,
  report_id       uuid        NOT NULL,
  signing_key_id  text        NOT NULL,
  signer_key_id   uuid,
  signer_role     text        NOT NULL,
  signed_at       timestamptz NOT NULL,
  envelope        bytea       NOT NULL,
  PRIMARY KEY (tenant_id, report_id),
  FOREIGN KEY (tenant_id, report_id) REFERENCES reports (tenant_id, id) ON DELETE CASCADE
);

CREATE TABLE audit_log (
  tenant_id     text        NOT NULL,
  id            bigint      GENERATED ALWAYS AS IDENTITY,
  at            timestamptz NOT NULL DEFAULT clock_timestamp(),
  action        text        NOT NULL,
  actor_key_id  uuid,
  actor         text        NOT NULL,
  target_type   text        NOT NULL,
  target_id     text        NOT NULL,
  details       jsonb       NOT NULL DEFAULT '{}',
  PRIMARY KEY (tenant_id, id)
);
CREATE INDEX audit_log_at ON audit_log (tenant_id, at, id);
CREATE INDEX audit_log_action_at ON audit_log (tenant_id, action, at, id);

ALTER TABLE report_signatures ENABLE ROW LEVEL SECURITY;
ALTER TABLE report_signatures FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON report_signatures
  USING (tenant_id = qcc_current_tenant()) WITH CHECK (tenant_id = qcc_current_tenant());

ALTER TABLE audit_log ENABLE ROW LEVEL SECURITY;
ALTER TABLE audit_log FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON audit_log
  USING (tenant_id = qcc_current_tenant() OR current_user = 'qcc_definer')
  WITH CHECK (tenant_id = qcc_current_tenant() OR current_user = 'qcc_definer');

ALTER POLICY tenant_isolation ON tenant_versions
  USING (tenant_id = qcc_current_tenant() OR current_user = 'qcc_definer')
  WITH CHECK (tenant_id = qcc_current_tenant() OR current_user = 'qcc_definer');

-- Append-only for everybody, owner included: no UPDATE, DELETE or TRUNCATE.
CREATE OR REPLACE FUNCTION qcc_audit_is_append_only() RETURNS trigger
  LANGUAGE plpgsql AS $$
  BEGIN
    RAISE EXCEPTION 'audit_log is append-only' USING ERRCODE = 'insufficient_privilege';
  END
  $$;
CREATE TRIGGER audit_log_append_only BEFORE UPDATE OR DELETE ON audit_log
  FOR EACH ROW EXECUTE FUNCTION qcc_audit_is_append_only();
CREATE TRIGGER audit_log_no_truncate BEFORE TRUNCATE ON audit_log
  FOR EACH STATEMENT EXECUTE FUNCTION qcc_audit_is_append_only();

-- One writer for every entry. Runs as qcc_definer so the env-key sync (which spans
-- tenants) is audited like everything else.
CREATE OR REPLACE FUNCTION qcc_audit(p_tenant text, p_action text, p_target_type text,
                                     p_target_id text, p_details jsonb)
  RETURNS void
  LANGUAGE sql SECURITY DEFINER SET search_path = public
  AS $$
    INSERT INTO audit_log (tenant_id, action, actor_key_id, actor, target_type, target_id,
                           details)
    VALUES (p_tenant, p_action,
            nullif(current_setting('app.actor_key', true), '')::uuid,
            coalesce(nullif(current_setting('app.actor', true), ''), 'database'),
            p_target_type, p_target_id, p_details);
    -- a new entry changes what GET /audit answers: move the tenant's ETag validator
    INSERT INTO tenant_versions (tenant_id, version) VALUES (p_tenant, 1)
    ON CONFLICT (tenant_id) DO UPDATE SET version = tenant_versions.version + 1;
  $$;
REVOKE ALL ON FUNCTION qcc_audit(text, text, text, text, jsonb) FROM PUBLIC;
ALTER FUNCTION qcc_audit(text, text, text, text, jsonb) OWNER TO qcc_definer;

CREATE OR REPLACE FUNCTION qcc_audit_signature() RETURNS trigger
  LANGUAGE plpgsql AS $$
  BEGIN
    PERFORM qcc_audit(NEW.tenant_id, 'report.sign', 'report', NEW.report_id::text,
                      jsonb_build_object('signing_key_id', NEW.signing_key_id,
                                         'signer_role', NEW.signer_role));
    RETURN NULL;
  END
  $$;
CREATE TRIGGER report_signatures_audit AFTER INSERT ON report_signatures
  FOR EACH ROW EXECUTE FUNCTION qcc_audit_signature();

CREATE OR REPLACE FUNCTION qcc_audit_api_key() RETURNS trigger
  LANGUAGE plpgsql AS $$
  BEGIN
    IF TG_OP = 'INSERT' THEN
      PERFORM qcc_audit(NEW.tenant_id, 'key.create', 'api_key', NEW.id::text,
                        jsonb_build_object('name', NEW.name, 'role', NEW.role,
                                           'origin', NEW.origin));
    ELSIF NEW.revoked_at IS NOT NULL AND OLD.revoked_at IS NULL THEN
      PERFORM qcc_audit(NEW.tenant_id, 'key.revoke', 'api_key', NEW.id::text,
                        jsonb_build_object('name', NEW.name, 'role', NEW.role));
    ELSIF NEW.role IS DISTINCT FROM OLD.role THEN
      PERFORM qcc_audit(NEW.tenant_id, 'key.role_change', 'api_key', NEW.id::text,
                        jsonb_build_object('from', OLD.role, 'to', NEW.role));
    END IF;
    RETURN NULL;
  END
  $$;
CREATE TRIGGER api_keys_audit AFTER INSERT OR UPDATE ON api_keys
  FOR EACH ROW EXECUTE FUNCTION qcc_audit_api_key();

GRANT SELECT, INSERT ON report_signatures TO qcc_app;
GRANT SELECT ON audit_log TO qcc_app;
GRANT INSERT ON audit_log TO qcc_definer;
GRANT SELECT, INSERT, UPDATE ON tenant_versions TO qcc_definer;
GRANT EXECUTE ON FUNCTION qcc_audit(text, text, text, text, jsonb) TO qcc_app, qcc_definer;
