-- Next offset to read per partition, written in the same transaction as the rows.
CREATE TABLE ops.stream_offsets (
    kafka_topic      text        NOT NULL,
    kafka_partition  integer     NOT NULL,
    kafka_topic_id   text        NOT NULL DEFAULT '',
    next_offset      bigint      NOT NULL,
    updated_at       timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (kafka_topic, kafka_partition)
);

-- One row per applied micro-batch, keyed by the offset ranges it covered:
-- a replayed batch (same ranges) is recognised and changes nothing.
CREATE TABLE ops.stream_batches (
    range_key        text        PRIMARY KEY,
    kafka_topic      text        NOT NULL,
    kafka_topic_id   text        NOT NULL DEFAULT '',
    spark_batch_id   bigint,
    offset_ranges    jsonb       NOT NULL,   -- [{"partition": p, "from": first, "to": last}]
    consumed         integer     NOT NULL,
    inserted         integer     NOT NULL,
    updated          integer     NOT NULL,
    duplicates       integer     NOT NULL,   -- older or identical versions of rows we already hold
    quarantined      integer     NOT NULL,
    started_at       timestamptz NOT NULL,
    committed_at     timestamptz NOT NULL DEFAULT now(),
    CHECK (consumed = inserted + updated + duplicates + quarantined)
);
CREATE INDEX stream_batches_committed_idx ON ops.stream_batches (committed_at);

-- Where an incremental source (the Stripe API pull) has got to. Advanced only
-- after Kafka acknowledged everything before it.
CREATE TABLE ops.source_cursors (
    source           text        NOT NULL,
    stream           text        NOT NULL,
    position         jsonb       NOT NULL,
    updated_at       timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (source, stream)
);

GRANT SELECT, INSERT, UPDATE ON ALL TABLES IN SCHEMA ops TO txstream_writer;
