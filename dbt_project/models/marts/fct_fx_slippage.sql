{{
    config(
        materialized='incremental',
        unique_key='balance_transaction_id',
        incremental_strategy='merge',
        on_schema_change='append_new_columns',
        indexes=[
            {'columns': ['balance_transaction_id'], 'unique': True},
            {'columns': ['charge_date', 'currency_code']},
            {'columns': ['transformed_xid']},
        ],
    )
}}

{#- FX slippage: for every charge Stripe settled in another currency than the charge's
    own (its balance transaction has an exchange_rate), what the charge is worth in GBP
    at txstream's reference rate against what Stripe actually credited, in GBP.

    reference_amount_gbp  the captured amount at the reference rate of the charge's date
                          (fct_transactions.captured_amount_gbp);
    settled_amount_gbp    the balance transaction's amount in the settlement currency at
                          Stripe's rate, converted to GBP at the reference rate when the
                          settlement currency is not GBP (fct_balance_transactions.amount_gbp);
    slippage_gbp          reference − settled: positive when Stripe's conversion credited
                          less than the reference rate would have.

    Stripe's conversion fee is not part of it (it is in the balance transaction's fee).

    Incremental: recomputes the balance transactions fct_balance_transactions rewrote since
    this model's watermark and those of charges fct_transactions rewrote since then. -#}

with

{% if is_incremental() %}
rewritten_charges as (

    select charge_id from {{ ref('fct_transactions') }}
    where transformed_xid >= {{ watermark() }}

),
{% endif %}

conversions as (

    {#- The `if` trails the line, as in dim_customers (sqlfluff issue 5604). #}
    select * from {{ ref('fct_balance_transactions') }}
    where source_type = 'charge' and exchange_rate is not null {% if is_incremental() -%}
        and (
            transformed_xid >= {{ watermark() }}
            or charge_id = any(array(select rewritten_charges.charge_id from rewritten_charges))
        )
    {%- endif %}

),

transactions as (

    select * from {{ ref('fct_transactions') }}
    {% if is_incremental() %}
    where charge_id = any(array(select conversions.charge_id from conversions))
    {% endif %}

),

compared as (

    select
        conversions.balance_transaction_id,
        conversions.charge_id,
        transactions.charge_date,
        transactions.currency_code,
        conversions.currency_code as settlement_currency_code,
        conversions.created_at,

        transactions.captured_amount as charge_amount,
        conversions.amount as settled_amount,
        conversions.exchange_rate,
        -- The reference rate in Stripe's direction: settlement units per 1 unit of the charge currency.
        conversions.fx_rate / transactions.fx_rate as reference_exchange_rate,

        transactions.captured_amount_gbp as reference_amount_gbp,
        conversions.amount_gbp as settled_amount_gbp,
        transactions.fx_rate_missing or conversions.fx_rate_missing as fx_rate_missing

    from conversions
    inner join transactions
        on conversions.charge_id = transactions.charge_id

),

final as (

    select
        -- keys
        balance_transaction_id,
        charge_id,
        charge_date,
        currency_code,
        settlement_currency_code,

        -- the conversion
        created_at,
        charge_amount,
        settled_amount,
        exchange_rate,
        reference_exchange_rate,

        -- in GBP (null when a reference rate is missing: see fx_rate_missing)
        reference_amount_gbp,
        settled_amount_gbp,
        reference_amount_gbp - settled_amount_gbp as slippage_gbp,
        100 * (reference_amount_gbp - settled_amount_gbp) / nullif(reference_amount_gbp, 0) as slippage_percent,
        fx_rate_missing,

        -- lineage
        now() as transformed_at,
        pg_current_xact_id() as transformed_xid,
        {{ source_snapshot_xmin() }} as source_snapshot_xmin

    from compared

)

select * from final
