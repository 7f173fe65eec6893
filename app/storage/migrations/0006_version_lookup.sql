-- The ETag validator read without a transaction: a matching If-None-Match is then
-- answered with one statement. The caller passes the authenticated tenant; the function
-- reveals nothing but that tenant's change counter.
CREATE OR REPLACE FUNCTION qcc_tenant_version(p_tenant text) RETURNS bigint
  LANGUAGE sql STABLE SECURITY DEFINER SET search_path = public
  AS $$ SELECT coalesce((SELECT version FROM tenant_versions WHERE tenant_id = p_tenant), 0) $$;
REVOKE ALL ON FUNCTION qcc_tenant_version(text) FROM PUBLIC;
ALTER FUNCTION qcc_tenant_version(text) OWNER TO qcc_definer;
GRANT EXECUTE ON FUNCTION qcc_tenant_version(text) TO qcc_app;
