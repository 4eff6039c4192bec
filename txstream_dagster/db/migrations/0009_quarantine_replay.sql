-- Replaying quarantined messages through the current transform (`txstream quarantine replay`),
-- and the retention of what the stream and dbt log (`ops_retention` job, daily).

-- A quarantined message stays in raw.quarantined_events when it is replayed: landed, it is marked
-- (replayed_at, replayed_as); still failing, `reason` and `detail` say what is wrong with it now
-- and `first_reason` keeps what the stream said when it quarantined it.
ALTER TABLE raw.quarantined_events
    ADD COLUMN first_reason     text,
    ADD COLUMN replay_attempts  integer     NOT NULL DEFAULT 0,
    ADD COLUMN last_replayed_at timestamptz,
    ADD COLUMN replayed_at      timestamptz,   -- when it landed in raw.transactions; null while quarantined
    ADD COLUMN replayed_as      text;          -- the object_id it landed as
CREATE INDEX quarantined_events_pending_idx ON raw.quarantined_events (reason, quarantined_at)
    WHERE replayed_at IS NULL;

-- One row per replay transaction: what it did to raw.transactions. The stream's batches do not
-- know these rows, so the accounting check adds them (`inserted`) to what the batches inserted.
CREATE TABLE ops.quarantine_replays (
    replay_id        uuid        PRIMARY KEY DEFAULT gen_random_uuid(),
    replayed         integer     NOT NULL,   -- quarantined messages put through the transform again
    inserted         integer     NOT NULL,
    updated          integer     NOT NULL,
    duplicates       integer     NOT NULL,   -- older or identical versions of rows already held
    still_quarantined integer    NOT NULL,
    committed_at     timestamptz NOT NULL DEFAULT now(),
    CHECK (replayed = inserted + updated + duplicates + still_quarantined)
);

-- Retention rolls the stream's old batches up into one row per topic and hour (their sums and
-- offset ranges, so the accounting check's totals and range continuity hold): how many it stands for.
ALTER TABLE ops.stream_batches ADD COLUMN batch_count integer NOT NULL DEFAULT 1;

-- What retention deleted, per run and table, written in the transaction of each delete: the
-- accounting check adds the quarantine rows deleted to those held.
CREATE TABLE ops.retention_deletions (
    run_started_at   timestamptz NOT NULL,
    table_name       text        NOT NULL,
    rows_deleted     bigint      NOT NULL,
    cutoff           timestamptz NOT NULL,
    deleted_at       timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (run_started_at, table_name)
);

-- Each table is cleaned by the login that writes it (0007): the writer its own, dbt its run log.
GRANT DELETE ON ops.stream_batches, ops.stream_lag, ops.dagster_run_failures, raw.quarantined_events TO txstream_writer;
GRANT DELETE ON ops.dbt_node_runs TO txstream_transformer;
GRANT SELECT, INSERT, UPDATE ON ops.retention_deletions TO txstream_transformer;
