{{ config(meta={'dagster': {'ref': {'name': 'fct_transactions'}}}) }}

{#- Every GBP amount, multiplied back by its rate, gives the raw Stripe amount in
    major units — recomputed here from raw.transactions, raw.forex_rates and the
    currency seed, independently of the models. Returns the charges that don't. -#}

with

raw_charges as (

    select
        object_id as charge_id,
        amount as amount_minor,
        currency,
        created_at
    from {{ source('stripe', 'transactions') }}
    where object_type = 'charge'

),

currencies as (

    select
        currency,
        minor_unit_exponent
    from {{ ref('currencies') }}

),

rates as (

    select
        rate_date,
        quote,
        rate
    from {{ source('forex', 'rates') }}
    where base = 'gbp'

),

expected as (

    select
        raw_charges.charge_id,
        raw_charges.amount_minor / power(10::numeric, currencies.minor_unit_exponent) as amount_major,
        case when raw_charges.currency = 'gbp' then 1 else rates.rate end as rate
    from raw_charges
    inner join currencies
        on raw_charges.currency = currencies.currency
    left join rates
        on raw_charges.currency = rates.quote
            and (raw_charges.created_at at time zone 'UTC')::date = rates.rate_date

),

transactions as (

    select
        charge_id,
        amount,
        amount_gbp,
        fx_rate
    from {{ ref('fct_transactions') }}

)

select
    transactions.charge_id,
    transactions.amount,
    transactions.amount_gbp,
    transactions.fx_rate,
    expected.amount_major as expected_amount,
    expected.rate as expected_rate
from transactions
inner join expected
    on transactions.charge_id = expected.charge_id
where transactions.amount is distinct from expected.amount_major
    or transactions.fx_rate is distinct from expected.rate
    -- GBP amounts carry up to ~20 significant digits: agree to a millionth of a unit.
    or abs(transactions.amount_gbp * transactions.fx_rate - expected.amount_major) > 0.000001
    or (transactions.amount_gbp is null) <> (expected.rate is null)
