{#- What an incremental fact converted to GBP recomputes for its rates, in two parts.

    refetched_rates(watermark): the CTE of the (date, currency) rates written at or
    after the watermark (a rate refetched or first fetched).

    rows_awaiting_rates(facts, key, date_column): the `key`s of the rows of `facts`
    (the fact as built) to convert again: those on a date whose rate was
    (re)fetched, and those still without a GBP amount that could now get one (a
    rate for the day exists, or the currency's exponent, after a fix to
    currencies.csv). Rows in a currency no source publishes stay flagged and are
    not re-merged each build. Union arms: use it inside a union. -#}
{% macro refetched_rates(watermark) -%}
refetched_rates as (

    select distinct
        rate_date,
        quote_currency
    from {{ ref('stg_forex__rates') }}
    where landed_xid >= {{ watermark }}

)
{%- endmacro %}

{% macro rows_awaiting_rates(facts, key, date_column) -%}
    select fct.{{ key }}
    from {{ facts }} as fct
    inner join refetched_rates
        on fct.{{ date_column }} = refetched_rates.rate_date
            and fct.currency_code = refetched_rates.quote_currency

    union

    select fct.{{ key }}
    from {{ facts }} as fct
    where fct.fx_rate_missing
        and (
            exists (
                select 1 from {{ ref('stg_forex__rates') }} as rates
                where rates.base_currency = 'gbp'
                    and rates.quote_currency = fct.currency_code
                    and rates.rate_date = fct.{{ date_column }}
            )
            or (
                fct.amount is null
                and fct.currency_code in (
                    select dim_currencies.currency_code from {{ ref('dim_currencies') }} as dim_currencies
                )
            )
        )
{%- endmacro %}
