-- Balance transactions and payouts land in raw.transactions beside charges, refunds and disputes.
-- A balance transaction's `amount` is signed (a refund, a dispute or a payout takes money out of
-- the balance); `currency` is the settlement currency. `payout_id` names the payout a balance
-- transaction was paid out in, when a producer listed it under that payout (Stripe's
-- `GET /v1/balance_transactions?payout=…`; the object itself does not say).
ALTER TABLE raw.transactions DROP CONSTRAINT transactions_object_type_check;
ALTER TABLE raw.transactions ADD CONSTRAINT transactions_object_type_check
    CHECK (object_type IN ('charge', 'refund', 'dispute', 'balance_transaction', 'payout'));
ALTER TABLE raw.transactions DROP CONSTRAINT transactions_amount_check;
ALTER TABLE raw.transactions ADD CONSTRAINT transactions_amount_check
    CHECK (amount >= 0 OR object_type = 'balance_transaction');
ALTER TABLE raw.transactions ADD COLUMN payout_id text;
CREATE INDEX transactions_payout_idx ON raw.transactions (payout_id) WHERE payout_id IS NOT NULL;
ALTER TABLE ops.stream_staging_template ADD COLUMN payout_id text;
ALTER TABLE ops.synthetic_stripe_objects ADD COLUMN payout_id text;  -- as raw.transactions.payout_id
CREATE INDEX synthetic_stripe_objects_payout_idx ON ops.synthetic_stripe_objects (payout_id) WHERE payout_id IS NOT NULL;
