-- qcc_tenant_version (0006) in PL/pgSQL. A SQL function that cannot be inlined (SECURITY
-- DEFINER, SET search_path) is parsed and planned again on every call: ~50 µs of the
-- server's CPU in every versioned read, a tenth of a list page's (the scope-and-version
-- statement measured 90 µs per call as SQL, 40 as PL/pgSQL, which keeps its statement's
-- plan for the session). Same signature, owner, grants and answer (CREATE OR REPLACE keeps
-- owner and privileges), so the release before this one calls it unchanged.
CREATE OR REPLACE FUNCTION qcc_tenant_version(p_tenant text) RETURNS bigint
  LANGUAGE plpgsql STABLE SECURITY DEFINER SET search_path = public
  AS $$
BEGIN
  RETURN coalesce((SELECT version FROM tenant_versions WHERE tenant_id = p_tenant), 0);
END
$$;
