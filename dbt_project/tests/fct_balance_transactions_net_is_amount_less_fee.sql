{{ config(severity='warn') }}

{#- Stripe's own identity, net = amount − fee, for every balance transaction: one that
    breaks it was sent so (a producer's bug); it is kept as sent, and named here. -#}

select
    balance_transaction_id,
    amount,
    fee,
    net
from {{ ref('fct_balance_transactions') }}
where net is distinct from amount - fee
