{#- Charges kept without a GBP amount because no rate applies, per currency.
    Rebuilt with the fact: a full refresh of fct_transactions drops this view. -#}
{{ config(meta={'dagster': {'automation': 'on_upstream_update'}}) }}

with

transactions as (

    select * from {{ ref('fct_transactions') }}
    where fx_rate_missing

),

final as (

    select
        currency_code,
        count(*) as charge_count,
        sum(amount) as amount,
        min(charge_date) as oldest_charge_date,
        max(charge_date) as newest_charge_date

    from transactions
    group by currency_code

)

select * from final
