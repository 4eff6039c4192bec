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

    Incremental by day: a build finds the days holding charges that
    fct_transactions rewrote in transactions at or after this model's watermark
    (macros/incremental.sql), and replaces those days whole (delete+insert on
    revenue_date), so a day is always the aggregate of all its charges — never a
    sum of partial batches. -#}

with

{% if is_incremental() %}
affected_days as (

    select distinct charge_date
    from {{ ref('fct_transactions') }}
    where transformed_xid >= {{ watermark() }}

),
{% endif %}

{#- `= any(array(…))`, as in fct_transactions: the few affected days are then read
    through the (charge_date, currency_code) index, where `in (select …)` was
    planned as a scan of the whole fact. #}
transactions as (

    select * from {{ ref('fct_transactions') }}
    {% if is_incremental() %}
    where charge_date = any(array(select affected_days.charge_date from affected_days))
    {% endif %}

),

payment_methods as (

    select * from {{ ref('dim_payment_methods') }}

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

        max(transactions.transformed_at) as charges_transformed_at

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
        now() as aggregated_at,
        {{ source_snapshot_xmin() }} as source_snapshot_xmin

    from by_day

)

select * from final
