{{
    config(
        materialized='incremental',
        unique_key='payment_method_key',
        incremental_strategy='merge',
        on_schema_change='append_new_columns',
        indexes=[{'columns': ['payment_method_key'], 'unique': True}],
    )
}}

{#- One row per distinct way of paying (type, card brand, funding, issuing
    country, wallet): many charges share one row. Incremental: a build reads only
    the charges changed since the previous one and widens first/last seen. -#}

with

charges as (

    select * from {{ ref('stg_stripe__charges') }}
    {% if is_incremental() %}
    where landed_xid >= {{ watermark() }}
    {% endif %}

),

payment_methods as (

    select
        {{ surrogate_key(['payment_method_type', 'card_brand', 'card_funding', 'card_country', 'wallet_type']) }}
            as payment_method_key,
        payment_method_type,
        card_brand,
        card_funding,
        card_country,
        wallet_type,
        min(created_at) as first_seen_at,
        max(created_at) as last_seen_at

    from charges
    group by payment_method_type, card_brand, card_funding, card_country, wallet_type

),

{% if is_incremental() %}
widened as (

    select
        payment_methods.payment_method_key,
        payment_methods.payment_method_type,
        payment_methods.card_brand,
        payment_methods.card_funding,
        payment_methods.card_country,
        payment_methods.wallet_type,
        least(payment_methods.first_seen_at, existing.first_seen_at) as first_seen_at,
        greatest(payment_methods.last_seen_at, existing.last_seen_at) as last_seen_at

    from payment_methods
    left join {{ this }} as existing
        on payment_methods.payment_method_key = existing.payment_method_key

),
{% else %}
widened as (

    select * from payment_methods

),
{% endif %}

final as (

    select
        *,
        wallet_type is not null as is_wallet,
        now() as transformed_at,
        {{ source_snapshot_xmin() }} as source_snapshot_xmin

    from widened

)

select * from final
