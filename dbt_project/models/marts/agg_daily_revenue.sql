{{
    config(
        materialized='incremental',
        unique_key='revenue_date',
        incremental_strategy='delete+insert',
        on_schema_change='append_new_columns',
        indexes=[
            {'columns': ['revenue_key'], 'unique': True},
            {'columns': ['revenue_date']},
        ],
    )
}}

{#- Daily revenue per currency, card brand and card country, for dashboards.

    Stripe's fees are those of the balance transactions of the row's charges (the
    charge's own, and those of its refunds and disputes, e.g. a £20 dispute fee),
    counted on the charge's day: in GBP as fct_balance_transactions converts them,
    and in the charge currency at the charge's rate (fee × fx_rate).

    Incremental by day: a build finds the days holding charges that
    fct_transactions rewrote, or whose balance transactions fct_balance_transactions
    rewrote (fees land with them, often after the charge), in transactions at or
    after this model's watermark (macros/incremental.sql), and replaces those days
    whole (delete+insert on revenue_date), so a day is always the aggregate of all
    its charges — never a sum of partial batches. -#}

with

{% if is_incremental() %}
affected_days as (

    select distinct charge_date
    from {{ ref('fct_transactions') }}
    where transformed_xid >= {{ watermark() }}

    union

    select fct.charge_date
    from {{ ref('fct_transactions') }} as fct
    where fct.charge_id = any(
            array(
                select balance_transactions.charge_id
                from {{ ref('fct_balance_transactions') }} as balance_transactions
                where balance_transactions.transformed_xid >= {{ watermark() }}
                    and balance_transactions.charge_id is not null
            )
        )

),
{% endif %}

{#- `= any(array(…))`, as in fct_transactions: the few affected days are then read
    through the (charge_date, currency_code) index, where `in (select …)` was
    planned as a scan of the whole fact. #}
charges as (

    select * from {{ ref('fct_transactions') }}
    {% if is_incremental() %}
    where charge_date = any(array(select affected_days.charge_date from affected_days))
    {% endif %}

),

payment_methods as (

    select * from {{ ref('dim_payment_methods') }}

),

-- A charge's fees in GBP: null when one of its balance transactions has no GBP amount.
fees_per_charge as (

    select
        charge_id,
        case when bool_or(fee_gbp is null) then null else sum(fee_gbp) end as fee_amount_gbp

    from {{ ref('fct_balance_transactions') }}
    where charge_id is not null
        {% if is_incremental() -%}
        and charge_id = any(array(select charges.charge_id from charges))
        {%- endif %}
    group by 1

),

transactions as (

    select
        charges.*,
        fees_per_charge.charge_id is not null as has_balance_transaction,
        coalesce(fees_per_charge.fee_amount_gbp, case when fees_per_charge.charge_id is null then 0 end)
            as fee_amount_gbp

    from charges
    left join fees_per_charge
        on charges.charge_id = fees_per_charge.charge_id

),

by_day as (

    select
        transactions.charge_date as revenue_date,
        transactions.currency_code,
        coalesce(payment_methods.card_brand, 'unknown') as card_brand,
        coalesce(payment_methods.card_country, 'unknown') as card_country,

        count(*) as charge_count,
        count(*) filter (where transactions.is_successful) as successful_charge_count,
        count(*) filter (where transactions.charge_status = 'failed') as failed_charge_count,
        count(*) filter (where transactions.fx_rate_missing) as fx_rate_missing_count,

        -- In the charge currency (one currency per row, so these sums are meaningful).
        sum(transactions.captured_amount) as gross_amount,
        sum(transactions.refunded_amount) as refunded_amount,
        sum(transactions.disputed_amount) as disputed_amount,
        sum(transactions.net_amount) as net_amount,

        -- In GBP: every charge of a row shares one rate (same day, same
        -- currency), so these are NULL exactly when that day's rate is missing.
        sum(transactions.captured_amount_gbp) as gross_amount_gbp,
        sum(transactions.refunded_amount_gbp) as refunded_amount_gbp,
        sum(transactions.disputed_amount_gbp) as disputed_amount_gbp,
        sum(transactions.net_amount_gbp) as net_amount_gbp,

        max(transactions.transformed_at) as charges_transformed_at,

        -- Stripe's fees: in GBP, and in the charge currency at the charge's rate. Null when a
        -- fee has no GBP amount, or (in the currency) when the day's rate is missing.
        count(*) filter (where transactions.is_successful and not transactions.has_balance_transaction)
            as unsettled_charge_count,
        case
            when bool_or(transactions.fee_amount_gbp is null) then null
            else sum(transactions.fee_amount_gbp * transactions.fx_rate)
        end as fee_amount,
        case when bool_or(transactions.fee_amount_gbp is null) then null else sum(transactions.fee_amount_gbp) end
            as fee_amount_gbp

    from transactions
    left join payment_methods
        on transactions.payment_method_key = payment_methods.payment_method_key
    group by 1, 2, 3, 4

),

final as (

    select
        {{ surrogate_key(['revenue_date', 'currency_code', 'card_brand', 'card_country']) }} as revenue_key,
        *,
        successful_charge_count::numeric / nullif(charge_count, 0) as success_rate,
        gross_amount / nullif(successful_charge_count, 0) as average_ticket,
        gross_amount_gbp / nullif(successful_charge_count, 0) as average_ticket_gbp,
        net_amount - fee_amount as net_after_fees_amount,
        net_amount_gbp - fee_amount_gbp as net_after_fees_amount_gbp,
        now() as aggregated_at,
        {{ source_snapshot_xmin() }} as source_snapshot_xmin

    from by_day

)

select * from final
