{{
    config(
        materialized='incremental',
        unique_key='activity_date',
        incremental_strategy='delete+insert',
        on_schema_change='append_new_columns',
        indexes=[{'columns': ['activity_date'], 'unique': True}],
    )
}}

{#- The account's balance activity per UTC day, in GBP, in the spirit of
    fivetran/dbt_stripe's stripe__daily_overview: what the charges brought in, what
    refunds and disputes took out, Stripe's fees, the net, what was paid out, and each
    of these over the 30 days ending that day. Amounts keep Stripe's signs: refunds,
    disputes and payouts are negative, fees positive (net = gross charges + refunds +
    disputes + other − fees). Every balance transaction counts on the UTC day it was
    created; one without a GBP amount (no rate) is left out of the sums and counted.

    One row for every day from the first balance transaction to the last, days without
    any included (zeros), so the rolling totals are plain sums over 30 rows.

    Incremental: a day whose balance transactions changed is replaced with the 29 days
    after it (their rolling totals include it), and so are days the table does not
    hold yet (delete+insert on activity_date). -#}

with

balance_range as (

    select
        min(balance_date) as first_day,
        max(balance_date) as last_day
    from {{ ref('fct_balance_transactions') }}

),

{% if is_incremental() %}
changed_days as (

    select distinct balance_date
    from {{ ref('fct_balance_transactions') }}
    where transformed_xid >= {{ watermark() }}

),

built_range as (

    select
        min(activity_date) as first_day,
        max(activity_date) as last_day
    from {{ this }}

),
{% endif %}

overview_days as (

    select calendar.day::date as activity_date
    from balance_range
    cross join
        lateral generate_series(balance_range.first_day, balance_range.last_day, interval '1 day') as calendar (day)
    {% if is_incremental() %}
    cross join built_range
    where built_range.first_day is null
        or calendar.day::date < built_range.first_day
        or calendar.day::date > built_range.last_day
        or exists (
            select 1 from changed_days
            where calendar.day::date between changed_days.balance_date and changed_days.balance_date + 29
        )
    {% endif %}

),

{% if is_incremental() %}
-- The days whose balance transactions the rolling totals of those days read.
window_days as (

    select distinct overview_days.activity_date - back.days as activity_date
    from overview_days
    cross join generate_series(0, 29) as back (days)

),
{% else %}
window_days as (

    select * from overview_days

),
{% endif %}

balance_transactions as (

    select
        *,
        case
            when reporting_category = 'charge' then 'gross_charges'
            when reporting_category in ('refund', 'refund_failure') then 'refunds'
            when reporting_category in ('dispute', 'dispute_reversal') then 'disputes'
            when reporting_category in ('payout', 'payout_reversal') then 'payouts'
            else 'other'
        end as activity
    from {{ ref('fct_balance_transactions') }}
    {% if is_incremental() %}
    where balance_date = any(array(select window_days.activity_date from window_days))
    {% endif %}

),

daily as (

    select
        balance_date as activity_date,
        count(*) filter (where activity = 'gross_charges') as charge_count,
        count(*) filter (where activity = 'refunds') as refund_count,
        count(*) filter (where activity = 'disputes') as dispute_count,
        count(*) filter (where activity = 'payouts') as payout_count,
        count(*) filter (where fx_rate_missing) as fx_rate_missing_count,
        sum(amount_gbp) filter (where activity = 'gross_charges') as gross_charges_gbp,
        sum(amount_gbp) filter (where activity = 'refunds') as refunds_gbp,
        sum(amount_gbp) filter (where activity = 'disputes') as disputes_gbp,
        sum(amount_gbp) filter (where activity = 'other') as other_gbp,
        sum(fee_gbp) filter (where activity <> 'payouts') as fees_gbp,
        sum(net_gbp) filter (where activity <> 'payouts') as net_gbp,
        sum(amount_gbp) filter (where activity = 'payouts') as payouts_gbp

    from balance_transactions
    group by balance_date

),

every_day as (

    select
        window_days.activity_date,
        coalesce(daily.charge_count, 0) as charge_count,
        coalesce(daily.refund_count, 0) as refund_count,
        coalesce(daily.dispute_count, 0) as dispute_count,
        coalesce(daily.payout_count, 0) as payout_count,
        coalesce(daily.fx_rate_missing_count, 0) as fx_rate_missing_count,
        coalesce(daily.gross_charges_gbp, 0) as gross_charges_gbp,
        coalesce(daily.refunds_gbp, 0) as refunds_gbp,
        coalesce(daily.disputes_gbp, 0) as disputes_gbp,
        coalesce(daily.other_gbp, 0) as other_gbp,
        coalesce(daily.fees_gbp, 0) as fees_gbp,
        coalesce(daily.net_gbp, 0) as net_gbp,
        coalesce(daily.payouts_gbp, 0) as payouts_gbp

    from window_days
    left join daily
        on window_days.activity_date = daily.activity_date

),

rolling as (

    select
        every_day.*,
        sum(every_day.gross_charges_gbp) over last_30_days as rolling_30d_gross_charges_gbp,
        sum(every_day.refunds_gbp) over last_30_days as rolling_30d_refunds_gbp,
        sum(every_day.disputes_gbp) over last_30_days as rolling_30d_disputes_gbp,
        sum(every_day.other_gbp) over last_30_days as rolling_30d_other_gbp,
        sum(every_day.fees_gbp) over last_30_days as rolling_30d_fees_gbp,
        sum(every_day.net_gbp) over last_30_days as rolling_30d_net_gbp,
        sum(every_day.payouts_gbp) over last_30_days as rolling_30d_payouts_gbp

    from every_day
    window last_30_days as (order by every_day.activity_date range between interval '29 days' preceding and current row)

),

final as (

    select
        rolling.*,
        now() as aggregated_at,
        {{ source_snapshot_xmin() }} as source_snapshot_xmin

    from rolling
    inner join overview_days
        on rolling.activity_date = overview_days.activity_date

)

select * from final
