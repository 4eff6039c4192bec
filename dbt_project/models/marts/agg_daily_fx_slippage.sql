{{
    config(
        materialized='incremental',
        unique_key='charge_date',
        incremental_strategy='delete+insert',
        on_schema_change='append_new_columns',
        indexes=[
            {'columns': ['slippage_key'], 'unique': True},
            {'columns': ['charge_date']},
        ],
    )
}}

{#- FX slippage per UTC day of the charges and charge currency (fct_fx_slippage):
    how much less (or more) Stripe's conversions credited than txstream's reference
    rates would have, in GBP and as a percent of the reference amount.

    Incremental by day, as agg_daily_revenue: the days holding conversions that
    fct_fx_slippage rewrote since this model's watermark are replaced whole. -#}

with

{% if is_incremental() %}
affected_days as (

    select distinct charge_date
    from {{ ref('fct_fx_slippage') }}
    where transformed_xid >= {{ watermark() }}

),
{% endif %}

conversions as (

    select * from {{ ref('fct_fx_slippage') }}
    {% if is_incremental() %}
    where charge_date = any(array(select affected_days.charge_date from affected_days))
    {% endif %}

),

by_day as (

    select
        charge_date,
        currency_code,

        count(*) as charge_count,
        count(*) filter (where fx_rate_missing) as fx_rate_missing_count,
        -- In the charge currency: one currency per row.
        sum(charge_amount) as charge_amount,

        -- In GBP, over the conversions with both reference rates (the others are counted above).
        sum(reference_amount_gbp) filter (where not fx_rate_missing) as reference_amount_gbp,
        sum(settled_amount_gbp) filter (where not fx_rate_missing) as settled_amount_gbp,
        sum(slippage_gbp) filter (where not fx_rate_missing) as slippage_gbp

    from conversions
    group by charge_date, currency_code

),

final as (

    select
        {{ surrogate_key(['charge_date', 'currency_code']) }} as slippage_key,
        charge_date,
        currency_code,
        charge_count,
        fx_rate_missing_count,
        charge_amount,
        reference_amount_gbp,
        settled_amount_gbp,
        slippage_gbp,
        100 * slippage_gbp / nullif(reference_amount_gbp, 0) as slippage_percent,
        now() as aggregated_at,
        {{ source_snapshot_xmin() }} as source_snapshot_xmin

    from by_day

)

select * from final
