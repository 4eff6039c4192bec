{{
    config(
        materialized='incremental',
        unique_key='payout_id',
        incremental_strategy='merge',
        on_schema_change='append_new_columns',
        indexes=[
            {'columns': ['payout_id'], 'unique': True},
            {'columns': ['payout_date']},
            {'columns': ['arrival_date']},
        ],
    )
}}

{#- One row per payout, with the balance transactions it paid out (those listed under
    it: fct_balance_transactions.payout_id) and whether they add up to it.

    A payout is reconciled when the net of the balance transactions it covers, in the
    payout's currency, equals its amount: the payout's own balance transaction (type
    payout, which takes the amount out of the balance) is not one it covers.

    Incremental: a build recomputes the payouts whose raw row changed since the previous
    build, those that any balance transaction rewritten since then is listed under, and
    those whose GBP rate was (re)fetched or is still missing (payouts are few), and
    merges them. -#}

with

{% if is_incremental() %}
affected_payouts as (

    select payout_id from {{ ref('stg_stripe__payouts') }}
    where landed_xid >= {{ watermark() }}

    union

    select payout_id from {{ ref('fct_balance_transactions') }}
    where transformed_xid >= {{ watermark() }}
        and payout_id is not null

    union

    -- Its GBP amount: recomputed when the payout date's rate is (re)fetched, or while missing.
    select fct.payout_id
    from {{ this }} as fct
    where fct.fx_rate_missing
        or exists (
            select 1 from {{ ref('stg_forex__rates') }} as rates
            where rates.landed_xid >= {{ watermark() }}
                and rates.base_currency = 'gbp'
                and rates.quote_currency = fct.currency_code
                and rates.rate_date = fct.payout_date
        )

),
{% endif %}

payouts as (

    select * from {{ ref('stg_stripe__payouts') }}
    {% if is_incremental() %}
    where payout_id = any(array(select affected_payouts.payout_id from affected_payouts))
    {% endif %}

),

covered_balance_transactions as (

    select * from {{ ref('fct_balance_transactions') }}
    where payout_id is not null
        and balance_transaction_type <> 'payout'
        {% if is_incremental() -%}
        and payout_id = any(array(select payouts.payout_id from payouts))
        {%- endif %}

),

gbp_rates as (

    select * from {{ ref('stg_forex__rates') }}
    where base_currency = 'gbp'

),

coverage as (

    select
        payouts.payout_id,
        count(covered.balance_transaction_id) as covered_transaction_count,
        -- A balance transaction in another currency than the payout cannot be part of it: counted, not summed.
        count(covered.balance_transaction_id) filter (where covered.currency_code <> payouts.currency_code)
            as other_currency_transaction_count,
        coalesce(sum(covered.amount) filter (where covered.currency_code = payouts.currency_code), 0)
            as covered_amount,
        coalesce(sum(covered.fee) filter (where covered.currency_code = payouts.currency_code), 0)
            as covered_fee,
        coalesce(sum(covered.net) filter (where covered.currency_code = payouts.currency_code), 0)
            as covered_net,
        coalesce(bool_or(covered.net is null) filter (where covered.balance_transaction_id is not null), false)
            as covered_net_unknown,
        max(covered.balance_transaction_ingested_at) as covered_last_ingested_at

    from payouts
    left join covered_balance_transactions as covered
        on payouts.payout_id = covered.payout_id
    group by payouts.payout_id

),

with_rates as (

    select
        payouts.*,
        (payouts.created_at at time zone 'UTC')::date as payout_date,
        (payouts.arrival_at at time zone 'UTC')::date as arrival_date,
        case when payouts.currency_code = 'gbp' then 1 else gbp_rates.rate end as fx_rate,
        coverage.covered_transaction_count,
        coverage.other_currency_transaction_count,
        coverage.covered_amount,
        coverage.covered_fee,
        coverage.covered_net,
        coverage.covered_net_unknown,
        coverage.covered_last_ingested_at

    from payouts
    inner join coverage
        on payouts.payout_id = coverage.payout_id
    left join gbp_rates
        on (payouts.created_at at time zone 'UTC')::date = gbp_rates.rate_date
            and payouts.currency_code = gbp_rates.quote_currency
            and payouts.currency_code <> 'gbp'

),

final as (

    select
        -- keys
        payout_id,
        balance_transaction_id,
        currency_code,
        payout_date,
        arrival_date,

        -- the payout
        created_at,
        arrival_at,
        payout_status,
        payout_status in ('pending', 'in_transit') as is_upcoming,
        is_automatic,
        payout_method,
        payout_type,
        failure_code,
        is_livemode,
        data_source,

        -- amounts in the payout currency
        amount_minor,
        amount,

        -- in GBP at the reference rate of the payout's UTC date (null when none applies)
        fx_rate,
        {{ to_gbp('amount') }} as amount_gbp,
        amount is null or fx_rate is null as fx_rate_missing,

        -- what it paid out: the balance transactions listed under it (its own excluded)
        covered_transaction_count,
        other_currency_transaction_count,
        covered_amount,
        covered_fee,
        covered_net,
        amount - covered_net as unreconciled_amount,
        coalesce(
            amount = covered_net and other_currency_transaction_count = 0 and not covered_net_unknown,
            false
        ) as is_reconciled,

        -- flags
        amount is null as currency_unknown,
        not {{ is_known_status('payout_status', 'payout') }} as status_unknown,

        -- lineage
        ingested_at as payout_ingested_at,
        greatest(ingested_at, covered_last_ingested_at) as last_ingested_at,
        now() as transformed_at,
        pg_current_xact_id() as transformed_xid,
        {{ source_snapshot_xmin() }} as source_snapshot_xmin

    from with_rates

)

select * from final
