{{
    config(
        severity='error',
        warn_if='>0',
        error_if='>' ~ var('blocking_after_failed_rows'),
    )
}}

{#- A payout on its way to the bank (in_transit) or in it (paid) pays out exactly the
    net of the balance transactions listed under it, in its currency.

    Blocking only when more than `blocking_after_failed_rows` payouts do not reconcile (a
    broken model, or producer); one odd payout, or one whose balance transactions land in
    a later micro-batch than it, warns. -#}

select
    payout_id,
    payout_status,
    currency_code,
    amount,
    covered_net,
    unreconciled_amount,
    covered_transaction_count,
    other_currency_transaction_count
from {{ ref('fct_payouts') }}
where payout_status in ('paid', 'in_transit')
    and not is_reconciled
