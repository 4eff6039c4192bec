-- What "Stripe" holds in synthetic mode: the latest version of every object the generator
-- published (written before it is sent to Kafka). A local Stripe-compatible API serves its list
-- endpoints from this table, so the daily reconciliation runs the same code as against Stripe.
CREATE TABLE ops.synthetic_stripe_objects (
    object_id        text        PRIMARY KEY,
    object_type      text        NOT NULL,
    created          bigint      NOT NULL,   -- the object's `created`, epoch seconds
    event_time_ms    bigint      NOT NULL,   -- the version held: the latest published
    payload          json        NOT NULL   -- served back as it is: json skips jsonb's conversion
);
CREATE INDEX synthetic_stripe_objects_type_created_idx ON ops.synthetic_stripe_objects (object_type, created);

-- The daily reconciliation's findings, one row per UTC day and object type: what Stripe lists
-- as created that day against what landed in raw.transactions, with the ids that differ.
CREATE TABLE ops.reconciliation_results (
    day              date        NOT NULL,
    object_type      text        NOT NULL,
    stripe_count     integer     NOT NULL,
    landed_count     integer     NOT NULL,
    stripe_amounts   jsonb       NOT NULL,   -- {currency: sum of amount in minor units}
    landed_amounts   jsonb       NOT NULL,
    missing_ids      text[]      NOT NULL,   -- in Stripe, neither landed nor quarantined
    quarantined_ids  text[]      NOT NULL,   -- in Stripe, not landed, held in raw.quarantined_events
    extra_ids        text[]      NOT NULL,   -- landed, unknown to Stripe
    mismatched_ids   text[]      NOT NULL,   -- landed with another amount or currency than Stripe's
    checked_at       timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (day, object_type)
);
