-- Least privilege: each part of the pipeline logs in as the role that does only its job.
--   txstream_writer       the stream, the forex asset, the Stripe cursors, the stream sensor:
--                         reads and writes raw and ops (and its own staging tables in ops); nothing else.
--   txstream_transformer  dbt: reads raw and ops, owns staging, marts and monitoring (and their
--                         *_dev twins), records its runs in ops.dbt_node_runs.
--   txstream_reader       Grafana and the KPI report: reads marts and monitoring only.
-- The database owner (the user in TXSTREAM_POSTGRES_URL) only runs these migrations. The logins
-- get their passwords from `txstream migrate` (as SCRAM verifiers, never in clear).
DO $$
BEGIN
    IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'txstream_transformer') THEN
        CREATE ROLE txstream_transformer NOLOGIN;
    END IF;
    EXECUTE format('GRANT CONNECT ON DATABASE %I TO txstream_transformer', current_database());
    -- The owner hands the dbt schemas to the transformer, which needs to be able to act as it
    -- (a superuser already can; a CREATEROLE owner grants itself the membership).
    IF NOT (SELECT rolsuper FROM pg_roles WHERE rolname = current_user) THEN
        EXECUTE format('GRANT txstream_transformer TO %I WITH INHERIT FALSE, SET TRUE', current_user);
    END IF;
END
$$;

-- The writer no longer creates anything where dbt builds, and dbt's run log is the transformer's.
REVOKE CREATE ON SCHEMA staging, marts, monitoring FROM txstream_writer;
REVOKE USAGE ON SCHEMA staging, marts, monitoring FROM txstream_writer;
REVOKE ALL ON ops.dbt_node_runs FROM txstream_writer;
GRANT DELETE ON ops.stream_lag TO txstream_writer;
-- Tables the owner adds to raw and ops later are the writer's to fill and the transformer's to read.
ALTER DEFAULT PRIVILEGES IN SCHEMA raw, ops GRANT SELECT, INSERT, UPDATE ON TABLES TO txstream_writer;
ALTER DEFAULT PRIVILEGES IN SCHEMA raw, ops GRANT SELECT ON TABLES TO txstream_transformer;

GRANT USAGE ON SCHEMA raw, ops TO txstream_transformer;
GRANT SELECT ON ALL TABLES IN SCHEMA raw, ops TO txstream_transformer;
GRANT INSERT, UPDATE ON ops.dbt_node_runs TO txstream_transformer;

-- What dbt builds in marts and monitoring, the dashboards may read (and nothing in staging or raw).
GRANT USAGE ON SCHEMA marts, monitoring TO txstream_reader;
GRANT SELECT ON ALL TABLES IN SCHEMA marts, monitoring TO txstream_reader;

-- dbt's schemas belong to the transformer, with whatever dbt built in them before this.
CREATE SCHEMA IF NOT EXISTS staging_dev;
CREATE SCHEMA IF NOT EXISTS marts_dev;
CREATE SCHEMA IF NOT EXISTS monitoring_dev;
-- (A new owner must be able to create in the schema, so first this, then the objects, then the schemas.)
GRANT USAGE, CREATE ON SCHEMA staging, marts, monitoring, staging_dev, marts_dev, monitoring_dev TO txstream_transformer;
DO $$
DECLARE
    object record;
BEGIN
    FOR object IN
        SELECT n.nspname AS schema_name, c.relname AS name,
               CASE c.relkind WHEN 'v' THEN 'VIEW' WHEN 'm' THEN 'MATERIALIZED VIEW' ELSE 'TABLE' END AS kind
        FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
        WHERE n.nspname IN ('staging', 'marts', 'monitoring', 'staging_dev', 'marts_dev', 'monitoring_dev')
          AND c.relkind IN ('r', 'v', 'm', 'p')
    LOOP
        EXECUTE format('ALTER %s %I.%I OWNER TO txstream_transformer', object.kind, object.schema_name, object.name);
    END LOOP;
END
$$;
ALTER SCHEMA staging OWNER TO txstream_transformer;
ALTER SCHEMA marts OWNER TO txstream_transformer;
ALTER SCHEMA monitoring OWNER TO txstream_transformer;
ALTER SCHEMA staging_dev OWNER TO txstream_transformer;
ALTER SCHEMA marts_dev OWNER TO txstream_transformer;
ALTER SCHEMA monitoring_dev OWNER TO txstream_transformer;
-- What the transformer builds there from now on, the reader may read too.
SET LOCAL ROLE txstream_transformer;
ALTER DEFAULT PRIVILEGES IN SCHEMA marts, monitoring GRANT SELECT ON TABLES TO txstream_reader;
RESET ROLE;

-- Staging tables the stream made while it signed in as the owner: the writer could not drop them.
-- Nothing in them is kept (a batch not yet applied is replayed from Spark's checkpoint).
DO $$
DECLARE
    staging record;
BEGIN
    FOR staging IN
        SELECT tablename FROM pg_tables
        WHERE schemaname = 'ops' AND starts_with(tablename, 'stream_staging_') AND tablename <> 'stream_staging_template'
    LOOP
        EXECUTE format('DROP TABLE ops.%I', staging.tablename);
    END LOOP;
END
$$;
