-- The hourly rollup by severity alone: what the default timeline (grouped by severity,
-- with or without a severity filter) reads. About 3 rows per tenant and hour instead of
-- report_rollup_hourly's ~25 (severity x status x source), so 30 days x hour aggregate
-- ~2,000 rows instead of ~20,000.
--
-- It is derived from report_rollup_hourly by a trigger, inside the statement that
-- changes the wide rollup (no round trip of its own). So every writer of the wide rollup
-- keeps it right without knowing of it: ingest, retention, the bench seed, an operator's
-- repair, and the previous release during a rolling update or after `helm rollback`
-- (which keeps this schema: docs/ROLLBACK_PLAN.md). A row trigger, not a statement one:
-- its events fire in the order the wide upsert visits its sorted keys, so concurrent
-- writers lock these rows in one order too (statement triggers split an upsert into its
-- inserted and its updated rows, and two writers could then lock in crossed orders).
CREATE TABLE report_rollup_severity_hourly (
  tenant_id text        NOT NULL,
  hour      timestamptz NOT NULL,
  severity  text        NOT NULL,
  n         bigint      NOT NULL,
  -- n stays out of the key: its updates are then HOT (no index entry per ingest)
  PRIMARY KEY (tenant_id, hour, severity)
);

ALTER TABLE report_rollup_severity_hourly ENABLE ROW LEVEL SECURITY;
ALTER TABLE report_rollup_severity_hourly FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON report_rollup_severity_hourly
  USING (tenant_id = qcc_current_tenant()) WITH CHECK (tenant_id = qcc_current_tenant());
-- the trigger runs as the writer of the wide rollup: the app role in the service
GRANT SELECT, INSERT, UPDATE, DELETE ON report_rollup_severity_hourly TO qcc_app;

CREATE FUNCTION qcc_rollup_by_severity() RETURNS trigger
  LANGUAGE plpgsql AS $$
  BEGIN
    IF TG_OP = 'UPDATE' AND OLD.tenant_id = NEW.tenant_id AND OLD.hour = NEW.hour
       AND OLD.severity = NEW.severity THEN  -- the common case: a count moved
      IF NEW.n <> OLD.n THEN
        UPDATE report_rollup_severity_hourly SET n = n + (NEW.n - OLD.n)
         WHERE tenant_id = NEW.tenant_id AND hour = NEW.hour AND severity = NEW.severity;
      END IF;
      RETURN NULL;
    END IF;
    IF TG_OP <> 'INSERT' THEN  -- a row deleted, or its key changed
      UPDATE report_rollup_severity_hourly SET n = n - OLD.n
       WHERE tenant_id = OLD.tenant_id AND hour = OLD.hour AND severity = OLD.severity;
    END IF;
    IF TG_OP <> 'DELETE' THEN
      INSERT INTO report_rollup_severity_hourly AS s (tenant_id, hour, severity, n)
      VALUES (NEW.tenant_id, NEW.hour, NEW.severity, NEW.n)
      ON CONFLICT (tenant_id, hour, severity) DO UPDATE SET n = s.n + EXCLUDED.n;
    END IF;
    RETURN NULL;
  END
  $$;
REVOKE ALL ON FUNCTION qcc_rollup_by_severity() FROM PUBLIC;

CREATE FUNCTION qcc_rollup_by_severity_truncate() RETURNS trigger
  LANGUAGE plpgsql AS $$
  BEGIN
    TRUNCATE report_rollup_severity_hourly;
    RETURN NULL;
  END
  $$;
REVOKE ALL ON FUNCTION qcc_rollup_by_severity_truncate() FROM PUBLIC;

-- The trigger first: its lock on report_rollup_hourly waits for writers in flight and
-- holds new ones until this commits, so the backfill below sees every count exactly once.
CREATE TRIGGER report_rollup_hourly_by_severity
  AFTER INSERT OR UPDATE OR DELETE ON report_rollup_hourly
  FOR EACH ROW EXECUTE FUNCTION qcc_rollup_by_severity();
CREATE TRIGGER report_rollup_hourly_by_severity_truncate
  AFTER TRUNCATE ON report_rollup_hourly
  FOR EACH STATEMENT EXECUTE FUNCTION qcc_rollup_by_severity_truncate();

-- in key order, as ingest leaves it (hour after hour): a range of hours is then a few
-- heap pages for the index scan, not one page per row
INSERT INTO report_rollup_severity_hourly (tenant_id, hour, severity, n)
SELECT tenant_id, hour, severity, sum(n)
  FROM report_rollup_hourly
 GROUP BY tenant_id, hour, severity
 ORDER BY tenant_id, hour, severity;
