-- One row per failed Dagster run, written by the run-failure sensor (txstream_dagster/defs/alerting):
-- Grafana cannot ask Dagster, so its "Dagster run failed" alert reads this, through the dbt view
-- monitoring.dagster_run_failures (the reader sees monitoring, never ops).
CREATE TABLE ops.dagster_run_failures (
    run_id           text        PRIMARY KEY,
    job_name         text        NOT NULL,
    failed_at        timestamptz NOT NULL,   -- when Dagster recorded the run's failure
    message          text        NOT NULL,   -- Dagster's run-failure message
    failed_steps     text[]      NOT NULL DEFAULT '{}',
    error            text,                   -- the first failed step's error, without its stack trace
    partition_key    text,
    recorded_at      timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX dagster_run_failures_failed_idx ON ops.dagster_run_failures (failed_at);

-- As 0007 gives every ops table: the writer (the sensor) fills it, dbt reads it for the view.
GRANT SELECT, INSERT, UPDATE ON ops.dagster_run_failures TO txstream_writer;
GRANT SELECT ON ops.dagster_run_failures TO txstream_transformer;
