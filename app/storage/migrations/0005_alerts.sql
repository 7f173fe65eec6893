-- Alerts: rules, the outbox (dedup windows), notifications and per-channel deliveries.
--
-- The ingest transaction upserts alert_windows (the outbox: one row per tenant, rule and
-- epoch-aligned dedup window, counting its matches), so a committed report never misses
-- its alert and a rolled-back one never sends one. The dispatcher (in the worker) turns
-- windows into notifications (the first match at once, a "+N more" summary when the
-- window closes) and notifications into one delivery row per channel, each retried on
-- its own. Service-level ("system") alerts use the same tables under the tenant
-- ':system', which no API key can have (tenant names are [A-Za-z0-9._-]).

CREATE TABLE alert_rules (
  tenant_id       text        NOT NULL,
  id              uuid        NOT NULL,
  name            text        NOT NULL,
  -- NULL: any value; a list: one of them (OR). Labels: the report's labels contain these.
  match_severity  text[],
  match_status    text[],
  match_source    text[],
  match_subject   text[],
  match_labels    jsonb       NOT NULL DEFAULT '{}',
  -- What the API shows: channel types and masked targets, never a secret.
  channels        jsonb       NOT NULL,
  fallback        jsonb,
  -- The full channel configurations (URLs, routing keys, webhook secrets), AES-GCM
  -- encrypted with ENCRYPTION_KEY; the associated data binds them to tenant and rule.
  secrets         bytea       NOT NULL,
  created_by      uuid,
  created_at      timestamptz NOT NULL DEFAULT now(),
  deleted_at      timestamptz,
  PRIMARY KEY (tenant_id, id)
);
-- Ingest asks "does this tenant have active rules?" in every write transaction.
CREATE INDEX alert_rules_active ON alert_rules (tenant_id, id) WHERE deleted_at IS NULL;

CREATE TABLE alert_windows (
  tenant_id      text        NOT NULL,
  rule_id        uuid        NOT NULL,
  window_start   timestamptz NOT NULL,
  window_end     timestamptz NOT NULL,
  dedup_key      text        NOT NULL,
  matched        bigint      NOT NULL,
  -- how many matches have been put into notifications (first message + summaries)
  announced      bigint      NOT NULL DEFAULT 0,
  -- the first matching report's summary (or a system alert's facts): the first message
  first_match    jsonb       NOT NULL,
  level          text        CHECK (level IN ('info', 'warning', 'error', 'critical')),
  last_match_at  timestamptz NOT NULL,
  PRIMARY KEY (tenant_id, rule_id, window_start)
);
-- What the dispatcher polls: windows with something not yet announced.
CREATE INDEX alert_windows_due ON alert_windows (window_end) WHERE matched > announced;
CREATE INDEX alert_windows_end ON alert_windows (window_end);

CREATE TABLE alert_notifications (
  tenant_id     text        NOT NULL,
  id            uuid        NOT NULL,
  rule_id       uuid        NOT NULL,
  rule_name     text        NOT NULL,
  dedup_key     text        NOT NULL,
  kind          text        NOT NULL CHECK (kind IN ('first', 'summary')),
  level         text        NOT NULL CHECK (level IN ('info', 'warning', 'error', 'critical')),
  summary       text        NOT NULL,
  matches       bigint      NOT NULL,
  window_start  timestamptz NOT NULL,
  window_end    timestamptz NOT NULL,
  details       jsonb       NOT NULL DEFAULT '{}',
  created_at    timestamptz NOT NULL DEFAULT clock_timestamp(),
  PRIMARY KEY (tenant_id, id)
);
CREATE INDEX alert_notifications_created ON alert_notifications (tenant_id, created_at, id);
CREATE INDEX alert_notifications_rule ON alert_notifications (tenant_id, rule_id, created_at, id);

CREATE TABLE alert_deliveries (
  tenant_id        text        NOT NULL,
  id               uuid        NOT NULL,
  notification_id  uuid        NOT NULL,
  rule_id          uuid        NOT NULL,
  channel_no       integer     NOT NULL,  -- index in the rule's channels; -1: the fallback
  channel_type     text        NOT NULL CHECK (channel_type IN ('slack', 'pagerduty', 'email', 'webhook')),
  target           text        NOT NULL,  -- masked
  status           text        NOT NULL DEFAULT 'pending'
                   CHECK (status IN ('pending', 'sending', 'delivered', 'failed', 'dead', 'cancelled')),
  attempts         integer     NOT NULL DEFAULT 0,
  -- when pending: not before; when sending: the claim's lease ends (then it is due again)
  next_attempt_at  timestamptz NOT NULL DEFAULT now(),
  claim            uuid,
  last_error       text,
  last_status      integer,
  delivered_at     timestamptz,
  updated_at       timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (tenant_id, id),
  -- one delivery per channel of a notification: never a second send to a channel
  CONSTRAINT alert_deliveries_channel_once UNIQUE (tenant_id, notification_id, channel_no),
  FOREIGN KEY (tenant_id, notification_id) REFERENCES alert_notifications (tenant_id, id)
    ON DELETE CASCADE
);
CREATE INDEX alert_deliveries_due ON alert_deliveries (next_attempt_at)
  WHERE status IN ('pending', 'sending');
CREATE INDEX alert_deliveries_notification ON alert_deliveries (tenant_id, notification_id);
CREATE INDEX alert_deliveries_dead ON alert_deliveries (updated_at) WHERE status = 'dead';

ALTER TABLE alert_rules ENABLE ROW LEVEL SECURITY;
ALTER TABLE alert_rules FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON alert_rules
  USING (tenant_id = qcc_current_tenant()) WITH CHECK (tenant_id = qcc_current_tenant());

ALTER TABLE alert_windows ENABLE ROW LEVEL SECURITY;
ALTER TABLE alert_windows FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON alert_windows
  USING (tenant_id = qcc_current_tenant() OR current_user = 'qcc_definer')
  WITH CHECK (tenant_id = qcc_current_tenant());

ALTER TABLE alert_notifications ENABLE ROW LEVEL SECURITY;
ALTER TABLE alert_notifications FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON alert_notifications
  USING (tenant_id = qcc_current_tenant() OR current_user = 'qcc_definer')
  WITH CHECK (tenant_id = qcc_current_tenant());

ALTER TABLE alert_deliveries ENABLE ROW LEVEL SECURITY;
ALTER TABLE alert_deliveries FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON alert_deliveries
  USING (tenant_id = qcc_current_tenant() OR current_user = 'qcc_definer')
  WITH CHECK (tenant_id = qcc_current_tenant());

GRANT SELECT, INSERT, UPDATE ON alert_rules, alert_windows, alert_notifications,
                                alert_deliveries TO qcc_app;
GRANT SELECT, DELETE ON alert_windows, alert_notifications, alert_deliveries TO qcc_definer;

-- The dispatcher serves every tenant: these functions only say which tenants have work
-- (or count, or prune); the work itself runs in each tenant's own RLS-scoped transaction.
CREATE OR REPLACE FUNCTION qcc_alert_tenants_with_work(p_grace interval)
  RETURNS SETOF text
  LANGUAGE sql STABLE SECURITY DEFINER SET search_path = public
  AS $$
    SELECT tenant_id FROM alert_windows
     WHERE matched > announced AND (announced = 0 OR window_end + p_grace <= now())
    UNION
    SELECT tenant_id FROM alert_deliveries
     WHERE status IN ('pending', 'sending') AND next_attempt_at <= now()
  $$;
REVOKE ALL ON FUNCTION qcc_alert_tenants_with_work(interval) FROM PUBLIC;
ALTER FUNCTION qcc_alert_tenants_with_work(interval) OWNER TO qcc_definer;
GRANT EXECUTE ON FUNCTION qcc_alert_tenants_with_work(interval) TO qcc_app;

-- Deliveries of tenant rules that reached the dead-letter state since a moment (a system
-- alert: the alerting itself is failing).
CREATE OR REPLACE FUNCTION qcc_alert_dead_since(p_since timestamptz)
  RETURNS bigint
  LANGUAGE sql STABLE SECURITY DEFINER SET search_path = public
  AS $$
    SELECT count(*) FROM alert_deliveries
     WHERE status = 'dead' AND updated_at >= p_since AND tenant_id <> ':system'
  $$;
REVOKE ALL ON FUNCTION qcc_alert_dead_since(timestamptz) FROM PUBLIC;
ALTER FUNCTION qcc_alert_dead_since(timestamptz) OWNER TO qcc_definer;
GRANT EXECUTE ON FUNCTION qcc_alert_dead_since(timestamptz) TO qcc_app;

-- The delivery log is kept for a while, then pruned in every tenant (closed windows and
-- settled notifications older than the cutoff).
CREATE OR REPLACE FUNCTION qcc_prune_alerts(p_older_than timestamptz)
  RETURNS bigint
  LANGUAGE sql SECURITY DEFINER SET search_path = public
  AS $$
    WITH windows AS (
      DELETE FROM alert_windows
       WHERE window_end < p_older_than AND matched = announced
      RETURNING 1
    ), notifications AS (
      DELETE FROM alert_notifications n
       WHERE n.created_at < p_older_than
         AND NOT EXISTS (SELECT 1 FROM alert_deliveries d
                          WHERE d.tenant_id = n.tenant_id AND d.notification_id = n.id
                            AND d.status IN ('pending', 'sending'))
      RETURNING 1
    )
    SELECT (SELECT count(*) FROM windows) + (SELECT count(*) FROM notifications)
  $$;
REVOKE ALL ON FUNCTION qcc_prune_alerts(timestamptz) FROM PUBLIC;
ALTER FUNCTION qcc_prune_alerts(timestamptz) OWNER TO qcc_definer;
GRANT EXECUTE ON FUNCTION qcc_prune_alerts(timestamptz) TO qcc_app;

-- Audit: rule changes, from the transaction of the change itself (never a secret: only
-- the name, the match and the channel types).
CREATE OR REPLACE FUNCTION qcc_audit_alert_rule() RETURNS trigger
  LANGUAGE plpgsql AS $$
  BEGIN
    IF TG_OP = 'INSERT' THEN
      PERFORM qcc_audit(NEW.tenant_id, 'alert_rule.create', 'alert_rule', NEW.id::text,
                        jsonb_build_object(
                          'name', NEW.name,
                          'channels', (SELECT coalesce(jsonb_agg(c->'type'), '[]')
                                         FROM jsonb_array_elements(NEW.channels) c),
                          'fallback', NEW.fallback->'type'));
    ELSIF NEW.deleted_at IS NOT NULL AND OLD.deleted_at IS NULL THEN
      PERFORM qcc_audit(NEW.tenant_id, 'alert_rule.delete', 'alert_rule', NEW.id::text,
                        jsonb_build_object('name', NEW.name));
    END IF;
    RETURN NULL;
  END
  $$;
CREATE TRIGGER alert_rules_audit AFTER INSERT OR UPDATE ON alert_rules
  FOR EACH ROW EXECUTE FUNCTION qcc_audit_alert_rule();
