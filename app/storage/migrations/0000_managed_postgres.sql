-- Managed PostgreSQL (RDS, Cloud SQL, Azure Flexible Server): the migrator is a role with
-- CREATEROLE that owns its database, not a superuser. This file sorts before 0001 so a
-- fresh database gets the group roles and the rights the later files rely on first; on
-- a database that already ran 0001 (as a superuser) it only tops the same rights up.
-- 0001 itself is left as applied: migrations are forward-only and checked by digest.

-- PostgreSQL 16 gives the creator of a role ADMIN OPTION only (no SET, no INHERIT).
-- Handing a function to qcc_definer needs SET ROLE rights on it, and replacing that
-- function in a later migration needs its privileges (INHERIT).
DO $$
BEGIN
  IF current_setting('server_version_num')::int >= 160000 THEN
    SET LOCAL createrole_self_grant = 'set, inherit';
  END IF;
  IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'qcc_app') THEN
    CREATE ROLE qcc_app NOLOGIN;
  END IF;
  -- Owns the few cross-tenant functions; nobody logs in as it or is granted it.
  IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'qcc_definer') THEN
    CREATE ROLE qcc_definer NOLOGIN;
  END IF;
  IF current_setting('server_version_num')::int >= 160000 THEN
    IF NOT (pg_has_role(current_user, 'qcc_definer', 'SET')
            AND pg_has_role(current_user, 'qcc_definer', 'USAGE')) THEN
      EXECUTE format('GRANT qcc_definer TO %I WITH INHERIT TRUE, SET TRUE', current_user);
    END IF;
  ELSIF NOT pg_has_role(current_user, 'qcc_definer', 'MEMBER') THEN
    EXECUTE format('GRANT qcc_definer TO %I', current_user);
  END IF;
END
$$;

-- ALTER ... OWNER TO qcc_definer needs the new owner to have CREATE on the schema.
-- Since PostgreSQL 15 only the database owner (pg_database_owner) has it on public.
GRANT USAGE, CREATE ON SCHEMA public TO qcc_definer;
