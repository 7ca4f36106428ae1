-- The runtime role every function but `migrate` connects as (through RDS Proxy, IAM auth):
-- DML on the application's tables, nothing else. It owns nothing and cannot run DDL: a bug or an
-- injected statement in a request path cannot drop, alter or truncate a table, create objects
-- or read the migration bookkeeping. Migrations keep running as the owner (the migrating user).
--
-- Roles are cluster-wide, so this tolerates a role that already exists (another database on the
-- same server, or a concurrent migration of one: unique_violation on the catalog).
DO $$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'chatflow_app') THEN
        BEGIN
            CREATE ROLE chatflow_app LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION NOBYPASSRLS;
        EXCEPTION WHEN duplicate_object OR unique_violation THEN
            NULL;
        END;
    END IF;
    -- On Aurora/RDS: the user signs in with IAM auth tokens (RDS Proxy end-to-end IAM), never
    -- with a password. Elsewhere (local, tests) the role does not exist.
    IF EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'rds_iam') THEN
        GRANT rds_iam TO chatflow_app;
    END IF;
    -- Temporary tables are DDL too, and nothing in the application needs them.
    EXECUTE format('REVOKE TEMPORARY ON DATABASE %I FROM PUBLIC', current_database());
    EXECUTE format('GRANT CONNECT ON DATABASE %I TO chatflow_app', current_database());
END
$$;

-- Before PostgreSQL 15 every role could create objects in the public schema.
REVOKE CREATE ON SCHEMA public FROM PUBLIC;
GRANT USAGE ON SCHEMA public TO chatflow_app;

GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA public TO chatflow_app;
GRANT USAGE, SELECT ON ALL SEQUENCES IN SCHEMA public TO chatflow_app;
-- Tables and sequences later migrations create get the same grants (they run as this owner).
ALTER DEFAULT PRIVILEGES IN SCHEMA public GRANT SELECT, INSERT, UPDATE, DELETE ON TABLES TO chatflow_app;
ALTER DEFAULT PRIVILEGES IN SCHEMA public GRANT USAGE, SELECT ON SEQUENCES TO chatflow_app;

-- The migration bookkeeping is the owner's alone.
REVOKE ALL ON schema_migrations FROM chatflow_app;
