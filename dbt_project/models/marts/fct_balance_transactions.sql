{{
    config(
        materialized='incremental',
        unique_key='balance_transaction_id',
        incremental_strategy='merge',
        on_schema_change='append_new_columns',
        indexes=[
            {'columns': ['balance_transaction_id'], 'unique': True},
            {'columns': ['balance_date', 'currency_code']},
            {'columns': ['charge_id']},
            {'columns': ['payout_id']},
            {'columns': ['fx_rate_missing', 'currency_code', 'balance_date']},
            {'columns': ['is_source_missing']},
            {'columns': ['transformed_xid']},
        ],
    )
}}

{#- One row per balance transaction: how each charge, refund, dispute and payout moved
    the account's balance, with Stripe's fees, in the settlement currency (major units)
    and in GBP at txstream's reference rate of the balance transaction's UTC date.

    Incremental, as fct_transactions (macros/incremental.sql): a build recomputes the
    balance transactions whose raw row changed since the previous build (a new one, or
    one republished as available under a payout), those on a date whose rates were
    (re)fetched, those still without a GBP amount that could now get one, and those
    whose source object had not landed but now has; and merges them. -#}

with

{% if is_incremental() %}
{{ refetched_rates(watermark()) }},

affected_balance_transactions as (

    select balance_transaction_id from {{ ref('stg_stripe__balance_transactions') }}
    where landed_xid >= {{ watermark() }}

    union

    {{ rows_awaiting_rates(this, 'balance_transaction_id', 'balance_date') }}

    union

    -- Landed before its charge, refund, dispute or payout (another Kafka partition):
    -- looked up again, by id, until that object is there.
    select fct.balance_transaction_id
    from {{ this }} as fct
    where fct.is_source_missing
        and (
            exists (
                select 1 from {{ ref('stg_stripe__charges') }} as c
                where c.charge_id = fct.source_id
            )
            or exists (
                select 1 from {{ ref('stg_stripe__refunds') }} as r
                where r.refund_id = fct.source_id
            )
            or exists (
                select 1 from {{ ref('stg_stripe__disputes') }} as d
                where d.dispute_id = fct.source_id
            )
            or exists (
                select 1 from {{ ref('stg_stripe__payouts') }} as p
                where p.payout_id = fct.source_id
            )
        )

),
{% endif %}

balance_transactions as (

    select * from {{ ref('stg_stripe__balance_transactions') }}
    {% if is_incremental() %}
    where balance_transaction_id = any(
            array(select affected_balance_transactions.balance_transaction_id from affected_balance_transactions)
        )
    {% endif %}

),

{#- The source objects, looked up by id (the staging views reach the primary key of
    raw.transactions); a full build joins them whole. #}

charges as (

    select charge_id from {{ ref('stg_stripe__charges') }}
    {% if is_incremental() %}
    where charge_id = any(array(select balance_transactions.source_id from balance_transactions))
    {% endif %}

),

refunds as (

    select
        refund_id,
        charge_id
    from {{ ref('stg_stripe__refunds') }}
    {% if is_incremental() %}
    where refund_id = any(array(select balance_transactions.source_id from balance_transactions))
    {% endif %}

),

disputes as (

    select
        dispute_id,
        charge_id
    from {{ ref('stg_stripe__disputes') }}
    {% if is_incremental() %}
    where dispute_id = any(array(select balance_transactions.source_id from balance_transactions))
    {% endif %}

),

payouts as (

    select payout_id from {{ ref('stg_stripe__payouts') }}
    {% if is_incremental() %}
    where payout_id = any(array(select balance_transactions.source_id from balance_transactions))
    {% endif %}

),

currencies as (

    select * from {{ ref('dim_currencies') }}

),

gbp_rates as (

    select * from {{ ref('stg_forex__rates') }}
    where base_currency = 'gbp'

),

{#- Stripe's id prefixes name the kind of object: ch_/py_ charges (py_: Connect
    payments), re_/pyr_ refunds, dp_/du_ disputes, po_ payouts. Anything else
    (transfers, application fees, …, or no source) is `other`: txstream lands no
    such objects. #}

classified as (

    select
        *,
        case split_part(source_id, '_', 1)
            when 'ch' then 'charge'
            when 'py' then 'charge'
            when 're' then 'refund'
            when 'pyr' then 'refund'
            when 'dp' then 'dispute'
            when 'du' then 'dispute'
            when 'po' then 'payout'
            else 'other'
        end as source_type,
        (created_at at time zone 'UTC')::date as balance_date
    from balance_transactions

),

with_sources as (

    select
        classified.*,
        case classified.source_type
            when 'charge' then classified.source_id
            when 'refund' then refunds.charge_id
            when 'dispute' then disputes.charge_id
        end as charge_id,
        case classified.source_type
            when 'charge' then charges.charge_id is null
            when 'refund' then refunds.refund_id is null
            when 'dispute' then disputes.dispute_id is null
            when 'payout' then payouts.payout_id is null
            else false
        end as is_source_missing,
        currencies.currency_code is null as currency_unknown,
        not {{ is_known_status('classified.balance_transaction_status', 'balance_transaction') }} as status_unknown,
        -- GBP is worth exactly 1 GBP: never looked up, whatever raw.forex_rates holds.
        case when classified.currency_code = 'gbp' then 1 else gbp_rates.rate end as fx_rate,
        case
            when classified.currency_code = 'gbp' then classified.balance_date
            else gbp_rates.effective_date
        end as fx_rate_effective_date

    from classified
    left join charges
        on classified.source_type = 'charge'
            and classified.source_id = charges.charge_id
    left join refunds
        on classified.source_type = 'refund'
            and classified.source_id = refunds.refund_id
    left join disputes
        on classified.source_type = 'dispute'
            and classified.source_id = disputes.dispute_id
    left join payouts
        on classified.source_type = 'payout'
            and classified.source_id = payouts.payout_id
    left join currencies
        on classified.currency_code = currencies.currency_code
    left join gbp_rates
        on classified.balance_date = gbp_rates.rate_date
            and classified.currency_code = gbp_rates.quote_currency
            and classified.currency_code <> 'gbp'

),

final as (

    select
        -- keys
        balance_transaction_id,
        charge_id,
        payout_id,
        currency_code,
        balance_date,

        -- the balance transaction
        created_at,
        available_on,
        balance_transaction_status,
        balance_transaction_type,
        reporting_category,
        source_id,
        source_type,
        description,
        data_source,

        -- amounts in the settlement currency, signed (money out of the balance is negative)
        amount_minor,
        amount,
        fee,
        net,
        exchange_rate,

        -- amounts in GBP (null when no rate applies: see fx_rate_missing)
        fx_rate,
        fx_rate_effective_date,
        {{ to_gbp('amount') }} as amount_gbp,
        {{ to_gbp('fee') }} as fee_gbp,
        {{ to_gbp('net') }} as net_gbp,
        amount is null or fx_rate is null as fx_rate_missing,

        -- flags
        currency_unknown,
        status_unknown,
        is_source_missing,

        -- lineage
        ingested_at as balance_transaction_ingested_at,
        now() as transformed_at,
        -- commit-ordered: the models downstream re-read the rows written at or after their watermark
        pg_current_xact_id() as transformed_xid,
        {{ source_snapshot_xmin() }} as source_snapshot_xmin

    from with_sources

)

select * from final
