{{
    config(
        materialized='incremental',
        unique_key='outcome_key',
        incremental_strategy='merge',
        on_schema_change='append_new_columns',
        indexes=[{'columns': ['outcome_key'], 'unique': True}],
    )
}}

{#- One row per distinct outcome of a charge attempt: status, Stripe's outcome
    type, the network's answer, the decline or risk reason and the risk level. -#}

with

charges as (

    select * from {{ ref('stg_stripe__charges') }}
    {% if is_incremental() %}
    where landed_xid >= {{ watermark() }}
    {% endif %}

),

outcomes as (

    select distinct
        {{ surrogate_key([
            'charge_status', 'outcome_type', 'network_status', 'outcome_reason', 'failure_code', 'risk_level',
        ]) }} as outcome_key,
        charge_status,
        outcome_type,
        network_status,
        outcome_reason,
        failure_code,
        risk_level

    from charges

),

final as (

    select
        outcome_key,
        charge_status,
        charge_status = 'succeeded' as is_successful,
        outcome_type,
        network_status,
        outcome_reason,
        case when charge_status = 'failed' then outcome_reason end as decline_code,
        failure_code,
        risk_level,
        now() as transformed_at,
        {{ source_snapshot_xmin() }} as source_snapshot_xmin

    from outcomes

)

select * from final
