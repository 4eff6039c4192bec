-- One row per Stripe object (charge, refund, dispute), the latest version wins.
-- Typed columns are the ones every model needs; the rest stays in `payload`,
-- exactly as Stripe sent it.
CREATE TABLE raw.transactions (
    object_id        text        PRIMARY KEY,
    object_type      text        NOT NULL CHECK (object_type IN ('charge', 'refund', 'dispute')),
    amount           bigint      NOT NULL CHECK (amount >= 0),   -- minor units of `currency`
    currency         text        NOT NULL CHECK (currency ~ '^[a-z]{3}$'),
    status           text,
    created_at       timestamptz NOT NULL,
    charge_id        text,                                       -- refunds and disputes: their charge
    customer_id      text,
    livemode         boolean,                                    -- Stripe refunds carry none
    source           text        NOT NULL,                       -- 'stripe' | 'synthetic'
    event_time       timestamptz NOT NULL,                       -- when this version was observed
    payload          jsonb       NOT NULL,
    kafka_topic      text        NOT NULL,
    kafka_topic_id   text        NOT NULL DEFAULT '',
    kafka_partition  integer     NOT NULL,
    kafka_offset     bigint      NOT NULL,
    kafka_timestamp  timestamptz,
    first_ingested_at timestamptz NOT NULL DEFAULT now(),
    ingested_at      timestamptz NOT NULL DEFAULT now()           -- last time this row changed
);
CREATE INDEX transactions_type_created_idx ON raw.transactions (object_type, created_at);
CREATE INDEX transactions_ingested_idx ON raw.transactions (ingested_at);
CREATE INDEX transactions_charge_idx ON raw.transactions (charge_id) WHERE charge_id IS NOT NULL;

-- Every message the stream could not accept, with why; nothing is dropped.
CREATE TABLE raw.quarantined_events (
    kafka_topic      text        NOT NULL,
    kafka_topic_id   text        NOT NULL DEFAULT '',
    kafka_partition  integer     NOT NULL,
    kafka_offset     bigint      NOT NULL,
    kafka_timestamp  timestamptz,
    kafka_key        bytea,
    raw_value        bytea,
    headers          jsonb,
    reason           text        NOT NULL,   -- machine-readable, e.g. invalid_json, missing_field
    detail           text        NOT NULL,   -- what was wrong, for a person
    quarantined_at   timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (kafka_topic, kafka_topic_id, kafka_partition, kafka_offset)
);
CREATE INDEX quarantined_events_at_idx ON raw.quarantined_events (quarantined_at);

-- 1 GBP in `quote`, for every calendar date. On days without publication
-- (weekends, TARGET holidays) `effective_date` names the business day whose
-- rates were carried forward.
CREATE TABLE raw.forex_rates (
    rate_date        date        NOT NULL,
    base             text        NOT NULL CHECK (base ~ '^[a-z]{3}$'),
    quote            text        NOT NULL CHECK (quote ~ '^[a-z]{3}$'),
    rate             numeric     NOT NULL CHECK (rate > 0),
    effective_date   date        NOT NULL CHECK (effective_date <= rate_date),
    source           text        NOT NULL,
    fetched_at       timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (rate_date, base, quote)
);

GRANT SELECT, INSERT, UPDATE ON ALL TABLES IN SCHEMA raw TO txstream_writer;
