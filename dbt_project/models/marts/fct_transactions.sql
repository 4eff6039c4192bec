{{
    config(
        materialized='incremental',
        unique_key='charge_id',
        incremental_strategy='merge',
        on_schema_change='append_new_columns',
        indexes=[
            {'columns': ['charge_id'], 'unique': True},
            {'columns': ['charge_date', 'currency_code']},
            {'columns': ['fx_rate_missing', 'currency_code', 'charge_date']},
            {'columns': ['transformed_xid']},
        ],
    )
}}

{#- One row per charge, every amount in the charge's currency (major units) and in
    GBP at the rate of the charge's UTC date. Refunds and chargebacks convert at
    the charge's rate too, so net = captured − refunded − disputed holds in GBP.

    Incremental: a build recomputes only the charges that can have changed since
    the previous build — charges whose raw row changed, charges whose refunds or
    disputes changed, charges on a date whose rates were (re)fetched, and charges
    still without a GBP amount that could now get one — and merges them on
    charge_id. `--full-refresh` recomputes everything and gives the same rows.

    The rows themselves are macros/charge_facts.sql, which fct_transactions_live
    computes at query time for the charges that changed since this table's build. #}

with

{{ charge_facts(this, watermark() if is_incremental() else none) }}

select * from final
