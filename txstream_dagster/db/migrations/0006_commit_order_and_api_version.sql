-- Commit-ordered watermarks: every row records the id of the transaction that last wrote it.
-- A dbt build notes the xmin of the snapshot it read (transactions below it had all ended); the
-- next build re-reads every row written by a transaction at or above it. Unlike a wall-clock
-- lookback on ingested_at (taken when a transaction *starts*), this never skips a transaction
-- that commits long after it began.
ALTER TABLE raw.transactions ADD COLUMN landed_xid xid8 NOT NULL DEFAULT pg_current_xact_id();
CREATE INDEX transactions_landed_xid_idx ON raw.transactions (landed_xid);
ALTER TABLE raw.forex_rates ADD COLUMN landed_xid xid8 NOT NULL DEFAULT pg_current_xact_id();
CREATE INDEX forex_rates_landed_xid_idx ON raw.forex_rates (landed_xid);

-- The Stripe API version that shaped each payload (the Event's api_version; null when unknown).
ALTER TABLE raw.transactions ADD COLUMN api_version text;
ALTER TABLE ops.stream_staging_template ADD COLUMN api_version text;
