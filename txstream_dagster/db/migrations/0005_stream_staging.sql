-- Where Spark's executors COPY a micro-batch, in parallel, before the driver
-- upserts it into raw.transactions in one transaction. One UNLOGGED table per
-- topic is created LIKE this one (the sink truncates it batch by batch):
-- nothing here needs to survive a crash, since a batch that was not applied
-- is replayed from Spark's checkpoint.
CREATE UNLOGGED TABLE ops.stream_staging_template (
    spark_batch_id    bigint      NOT NULL,
    object_id         text,
    object_type       text,
    amount            bigint,
    currency          text,
    status            text,
    created_at        timestamptz,
    charge_id         text,
    customer_id       text,
    livemode          boolean,
    source            text,
    event_time        timestamptz,
    payload           jsonb,
    kafka_topic       text        NOT NULL,
    kafka_topic_id    text        NOT NULL,
    kafka_partition   integer     NOT NULL,
    kafka_offset      bigint      NOT NULL,
    kafka_timestamp   timestamptz,
    kafka_key         bytea,
    raw_value         bytea,
    headers           jsonb,
    quarantine_reason text,
    quarantine_detail text
);
GRANT CREATE ON SCHEMA ops TO txstream_writer;
GRANT SELECT ON ops.stream_staging_template TO txstream_writer;
