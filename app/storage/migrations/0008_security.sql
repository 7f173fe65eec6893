-- Security hardening (issue 17): key rotation with a grace period, the console session's
-- role read from its key on every request, and failed-authentication counts per client
-- address shared by every worker and replica.

-- A rotated key keeps its id, name and role; the previous secret keeps working until
-- previous_valid_until (KEY_ROTATION_GRACE), then only the new one does.
ALTER TABLE api_keys
  ADD COLUMN previous_secret_sha256 bytea,
  ADD COLUMN previous_valid_until  timestamptz,
  ADD COLUMN rotated_at            timestamptz,
  ADD CONSTRAINT api_keys_previous_secret_unique UNIQUE (previous_secret_sha256);

CREATE OR REPLACE FUNCTION qcc_lookup_api_key(p_secret_sha256 bytea)
  RETURNS TABLE (tenant_id text, id uuid, role text)
  LANGUAGE sql STABLE SECURITY DEFINER SET search_path = public
  AS $$
    SELECT k.tenant_id, k.id, k.role FROM api_keys k
     WHERE k.secret_sha256 = p_secret_sha256 AND k.revoked_at IS NULL
    UNION ALL
    SELECT k.tenant_id, k.id, k.role FROM api_keys k
     WHERE k.previous_secret_sha256 = p_secret_sha256 AND k.revoked_at IS NULL
       AND k.previous_valid_until > now()
  $$;

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
    ELSIF NEW.secret_sha256 IS DISTINCT FROM OLD.secret_sha256 THEN
      PERFORM qcc_audit(NEW.tenant_id, 'key.rotate', 'api_key', NEW.id::text,
                        jsonb_build_object('name', NEW.name, 'role', NEW.role,
                                           'previous_valid_until', NEW.previous_valid_until));
    ELSIF NEW.role IS DISTINCT FROM OLD.role THEN
      PERFORM qcc_audit(NEW.tenant_id, 'key.role_change', 'api_key', NEW.id::text,
                        jsonb_build_object('from', OLD.role, 'to', NEW.role));
    END IF;
    RETURN NULL;
  END
  $$;

-- The session's role is its key's role now (a changed role applies at once), not the
-- role the key had at login.
CREATE OR REPLACE FUNCTION qcc_lookup_session(p_secret_sha256 bytea, p_idle interval)
  RETURNS TABLE (tenant_id text, key_id uuid, role text, expires_at timestamptz)
  LANGUAGE sql SECURITY DEFINER SET search_path = public
  AS $$
    WITH live AS (
      SELECT s.secret_sha256, s.tenant_id, s.key_id, k.role, s.expires_at, s.last_seen_at
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

-- Attempts per client address per fixed window (failed API keys, console logins): one
-- counter for every worker and replica. No tenant: the address is all that is known.
CREATE TABLE auth_attempts (
  scope         text        NOT NULL,
  address       text        NOT NULL,
  window_start  timestamptz NOT NULL,
  attempts      integer     NOT NULL,
  PRIMARY KEY (scope, address, window_start)
);

CREATE OR REPLACE FUNCTION qcc_count_attempt(p_scope text, p_address text, p_window integer)
  RETURNS TABLE (attempts integer, window_end timestamptz)
  LANGUAGE sql SECURITY DEFINER SET search_path = public
  AS $$
    WITH w AS (
      SELECT to_timestamp(floor(extract(epoch FROM now()) / p_window) * p_window) AS start
    ), pruned AS (
      DELETE FROM auth_attempts
       WHERE window_start < now() - make_interval(secs => 2 * p_window)
    )
    INSERT INTO auth_attempts AS a (scope, address, window_start, attempts)
    SELECT p_scope, left(p_address, 100), w.start, 1 FROM w
    ON CONFLICT (scope, address, window_start) DO UPDATE SET attempts = a.attempts + 1
    RETURNING a.attempts, a.window_start + make_interval(secs => p_window)
  $$;
REVOKE ALL ON FUNCTION qcc_count_attempt(text, text, integer) FROM PUBLIC;
ALTER FUNCTION qcc_count_attempt(text, text, integer) OWNER TO qcc_definer;
GRANT SELECT, INSERT, UPDATE, DELETE ON auth_attempts TO qcc_definer;
GRANT EXECUTE ON FUNCTION qcc_count_attempt(text, text, integer) TO qcc_app;
