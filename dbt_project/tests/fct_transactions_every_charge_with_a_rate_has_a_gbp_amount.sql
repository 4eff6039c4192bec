{{ config(meta={'dagster': {'ref': {'name': 'fct_transactions'}}}) }}

{#- A charge whose currency has a GBP rate on the charge date must have its GBP
    amount: a NULL there means a broken join (say, a code's case or the date's
    time zone), not a missing rate. Charges whose date has no rate yet are
    expected to wait, flagged, and are not returned. -#}

with

transactions as (

    select * from {{ ref('fct_transactions') }}

),

rates as (

    select * from {{ ref('stg_forex__rates') }}
    where base_currency = 'gbp'

)

select
    transactions.charge_id,
    transactions.currency_code,
    transactions.charge_date
from transactions
where (transactions.amount_gbp is null or transactions.fx_rate_missing)
    and (
        transactions.currency_code = 'gbp'
        or exists (
            select 1 from rates
            where rates.quote_currency = transactions.currency_code
                and rates.rate_date = transactions.charge_date
        )
    )
    and transactions.currency_code in (
        select dim_currencies.currency_code from {{ ref('dim_currencies') }} as dim_currencies
    )
