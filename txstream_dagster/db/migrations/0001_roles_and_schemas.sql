-- Roles: the pipeline writes through txstream_writer; dashboards read through
-- txstream_reader, which sees only the marts and monitoring schemas (never raw data).
DO $$
BEGIN
    IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'txstream_writer') THEN
        CREATE ROLE txstream_writer NOLOGIN;
    END IF;
    IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'txstream_reader') THEN
        CREATE ROLE txstream_reader NOLOGIN;
    END IF;
    EXECUTE format('GRANT CONNECT ON DATABASE %I TO txstream_reader, txstream_writer', current_database());
END
$$;

CREATE SCHEMA IF NOT EXISTS raw;        -- landed by the stream and the forex asset
CREATE SCHEMA IF NOT EXISTS ops;        -- pipeline bookkeeping: offsets, batches, cursors
CREATE SCHEMA IF NOT EXISTS staging;    -- dbt staging views
CREATE SCHEMA IF NOT EXISTS marts;      -- dbt facts and dimensions
CREATE SCHEMA IF NOT EXISTS monitoring; -- dbt views that the pipeline-health dashboard reads

GRANT USAGE ON SCHEMA raw, ops TO txstream_writer;
GRANT USAGE, CREATE ON SCHEMA staging, marts, monitoring TO txstream_writer;
GRANT USAGE ON SCHEMA marts, monitoring TO txstream_reader;
ALTER DEFAULT PRIVILEGES IN SCHEMA marts, monitoring GRANT SELECT ON TABLES TO txstream_reader;
