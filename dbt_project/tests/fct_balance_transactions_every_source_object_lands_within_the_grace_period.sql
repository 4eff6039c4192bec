{{ config(severity='warn') }}

{#- A balance transaction's charge, refund, dispute or payout has landed within
    `source_object_grace_minutes` of the balance transaction itself (or of its creation,
    whichever is later): they travel on different Kafka partitions, so one may land a
    micro-batch or two before the other. Later than that, the source is missing: warns,
    naming it (the balance transaction is kept, with is_source_missing set). -#}

select
    balance_transaction_id,
    balance_transaction_type,
    source_type,
    source_id,
    created_at,
    balance_transaction_ingested_at
from {{ ref('fct_balance_transactions') }}
where is_source_missing
    and greatest(created_at, balance_transaction_ingested_at)
    < now() - interval '{{ var("source_object_grace_minutes") | int }} minutes'
