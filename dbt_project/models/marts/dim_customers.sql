{{
    config(
        materialized='incremental',
        unique_key='customer_id',
        incremental_strategy='merge',
        on_schema_change='append_new_columns',
        indexes=[{'columns': ['customer_id'], 'unique': True}],
    )
}}

{#- One row per Stripe customer seen on a charge (guest checkouts have none).
    No names or e-mail addresses: the marts are readable by the dashboards. -#}

with

charges as (

    select * from {{ ref('stg_stripe__charges') }}
    {#- The `if` trails the line: on a line of its own sqlfluff wants it indented
        differently when it renders and when it does not (sqlfluff issue 5604). #}
    where customer_id is not null {% if is_incremental() -%}
        and landed_xid >= {{ watermark() }}
    {%- endif %}

),

customers as (

    select
        customer_id,
        min(created_at) as first_charge_at,
        max(created_at) as last_charge_at,
        (
            array_agg(billing_country order by created_at desc, charge_id desc)
            filter (where billing_country is not null)
        )[1] as billing_country,
        bool_or(is_livemode) as is_livemode

    from charges
    group by customer_id

),

{% if is_incremental() %}
widened as (

    select
        customers.customer_id,
        least(customers.first_charge_at, existing.first_charge_at) as first_charge_at,
        greatest(customers.last_charge_at, existing.last_charge_at) as last_charge_at,
        case
            when existing.customer_id is null or customers.last_charge_at >= existing.last_charge_at
                then coalesce(customers.billing_country, existing.billing_country)
            else coalesce(existing.billing_country, customers.billing_country)
        end as billing_country,
        customers.is_livemode or coalesce(existing.is_livemode, false) as is_livemode

    from customers
    left join {{ this }} as existing
        on customers.customer_id = existing.customer_id

),
{% else %}
widened as (

    select * from customers

),
{% endif %}

final as (

    select
        *,
        now() as transformed_at,
        {{ source_snapshot_xmin() }} as source_snapshot_xmin

    from widened

)

select * from final
