-- Kafka lag as the stream sensor sees it on each tick: the broker's end offset
-- next to the offset the sink has committed. Grafana cannot ask Kafka; it reads this.
CREATE TABLE ops.stream_lag (
    observed_at      timestamptz NOT NULL DEFAULT now(),
    kafka_topic      text        NOT NULL,
    kafka_partition  integer     NOT NULL,
    end_offset       bigint      NOT NULL,
    committed_offset bigint      NOT NULL,
    PRIMARY KEY (kafka_topic, kafka_partition, observed_at)
);
CREATE INDEX stream_lag_observed_idx ON ops.stream_lag (observed_at);

-- One row per dbt node per invocation, written by dbt's on-run-end hook.
CREATE TABLE ops.dbt_node_runs (
    invocation_id    text        NOT NULL,
    unique_id        text        NOT NULL,
    resource_type    text        NOT NULL,
    status           text        NOT NULL,
    rows_affected    bigint,
    execution_seconds double precision,
    completed_at     timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (invocation_id, unique_id)
);
CREATE INDEX dbt_node_runs_completed_idx ON ops.dbt_node_runs (unique_id, completed_at);

GRANT SELECT, INSERT, UPDATE, DELETE ON ops.stream_lag, ops.dbt_node_runs TO txstream_writer;
