-- Every move of a tenant's ETag validator is announced on one channel, so each API
-- process can answer If-None-Match from memory (app/conditional.py) and drop what it
-- remembered the moment the tenant changes. The payload is the tenant id only; NOTIFY
-- is sent at commit, so a listener never hears of a change it cannot yet read.
CREATE OR REPLACE FUNCTION qcc_announce_tenant_change() RETURNS trigger
  LANGUAGE plpgsql AS $$
  BEGIN
    PERFORM pg_notify('qcc_tenant_changes', NEW.tenant_id);
    RETURN NULL;
  END
  $$;
REVOKE ALL ON FUNCTION qcc_announce_tenant_change() FROM PUBLIC;

CREATE TRIGGER tenant_versions_announce AFTER INSERT OR UPDATE ON tenant_versions
  FOR EACH ROW EXECUTE FUNCTION qcc_announce_tenant_change();
