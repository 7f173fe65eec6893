-- Each report's list item rendered once, when it is written, instead of on every page.
-- Rendering a page of 50 items in the list statement cost about 180 µs of PostgreSQL's CPU
-- (to_json's escaping of seven texts per item most of it), over half of the page: 300 µs
-- per page rendered, 120 µs concatenating stored items (median of 7 rounds of 500 pages,
-- interleaved, one backend).
--
-- `summary` holds the item up to and including content_sha256: the keys after it change
-- (signed, and the signature once it exists) or are optional (run_id) and are still
-- rendered by the list. qcc_report_summary is the one rendering; a row trigger calls it
-- inside the statement that writes the row, so every writer keeps it right without knowing
-- of it: ingest, the bench seed, an operator's repair, and the previous release during a
-- rolling update or after `helm rollback` (docs/ROLLBACK_PLAN.md). It costs ~5 µs per
-- row in a bulk insert (50,000 rows, 3 rounds) and is within noise of a single-row
-- autocommit insert. An UPDATE of a rendered column renders again; signing does not.
-- Rows written before this migration keep NULL and the list renders them with the same
-- function (`coalesce`), so the migration does not rewrite the table: ADD COLUMN without
-- a default only changes the catalog, and ingest never waits behind it.
--
-- STABLE, not IMMUTABLE: to_json and to_char are STABLE, and PostgreSQL inlines a SQL
-- function only when it is no less volatile than its body. Declared IMMUTABLE it was
-- called, not inlined, and its body parsed and planned again in every statement: +180 µs
-- of the server's CPU per single-row insert. It takes the table's row type, so the
-- trigger, the list statement and a check of a stored summary pass one argument (same
-- bytes and cost as passing the 13 columns: 7 rounds of 1,000 inserts and of 300 pages).
ALTER TABLE reports ADD COLUMN summary text;

CREATE FUNCTION qcc_report_summary(r reports) RETURNS text
  LANGUAGE sql STABLE PARALLEL SAFE
  AS $$
    SELECT '{"id":"' || r.id || '","tenant":' || to_json(r.tenant_id)
           || ',"source":' || to_json(r.source) || ',"subject":' || to_json(r.subject)
           || ',"observed_at":' || to_json(r.observed_at_raw)
           || ',"received_at":"'
           || to_char(r.received_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24":"MI":"SS.US"Z"')
           || '","labels":' || r.labels::text
           || ',"status":' || to_json(r.status) || ',"severity":' || to_json(r.severity)
           || ',"counts":{"pass":' || r.count_pass || ',"warn":' || r.count_warn
           || ',"fail":' || r.count_fail || '},"content_sha256":' || to_json(r.content_sha256)
  $$;

CREATE FUNCTION qcc_report_summary_fill() RETURNS trigger
  LANGUAGE plpgsql AS $$
  BEGIN
    NEW.summary := qcc_report_summary(NEW);
    RETURN NEW;
  END
  $$;
REVOKE ALL ON FUNCTION qcc_report_summary_fill() FROM PUBLIC;

-- Not on signing (UPDATE OF signed): the summary holds nothing that signing changes.
CREATE TRIGGER reports_summary
  BEFORE INSERT OR UPDATE OF id, tenant_id, source, subject, observed_at_raw, received_at,
                             labels, status, severity, count_pass, count_warn, count_fail,
                             content_sha256, summary
  ON reports FOR EACH ROW EXECUTE FUNCTION qcc_report_summary_fill();
