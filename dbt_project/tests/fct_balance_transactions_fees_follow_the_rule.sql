{{
    config(
        severity='error',
        warn_if='>0',
        error_if='>' ~ var('blocking_after_failed_rows'),
        meta={'dagster': {'ref': {'name': 'fct_balance_transactions'}}},
    )
}}

{#- Every fee the synthetic source charged follows its rule (macros/synthetic_fee.sql,
    the rule of txstream_dagster/defs/stripe_source/synthetic_fees.py): recomputed from
    the balance transaction's settled amount and its charge's card country and currency.
    Only synthetic balance transactions of type charge whose charge has landed: Stripe's
    own fees follow Stripe's pricing.

    Blocking only when more than `blocking_after_failed_rows` fees are wrong (a broken rule
    or model); a single odd synthetic record warns. -#}

with

balance_transactions as (

    select * from {{ ref('fct_balance_transactions') }}
    where data_source = 'synthetic'
        and balance_transaction_type = 'charge'

),

charges as (

    {#- From the staging view, upstream of fct_balance_transactions: so a failure above
        the threshold blocks every model downstream of the fact (a ref to the charge fact
        would block only those downstream of both). #}
    select
        charge_id,
        card_country,
        currency_code
    from {{ ref('stg_stripe__charges') }}

),

currencies as (

    select * from {{ ref('dim_currencies') }}

),

expected as (

    select
        balance_transactions.balance_transaction_id,
        balance_transactions.charge_id,
        charges.card_country,
        charges.currency_code as charge_currency_code,
        balance_transactions.amount_minor as settled_amount_minor,
        balance_transactions.fee,
        {{ minor_to_major(
            synthetic_fee('balance_transactions.amount_minor', 'charges.card_country', 'charges.currency_code'),
            'currencies.minor_unit_exponent'
        ) }} as expected_fee

    from balance_transactions
    inner join charges
        on balance_transactions.charge_id = charges.charge_id
    inner join currencies
        on balance_transactions.currency_code = currencies.currency_code

)

select * from expected
where fee is distinct from expected_fee
