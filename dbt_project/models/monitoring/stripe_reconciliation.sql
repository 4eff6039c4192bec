{#- The daily reconciliation with Stripe, for the "Stripe objects missing" alert and its panel. -#}

with

results as (

    select * from {{ source('dagster', 'reconciliation_results') }}

),

final as (

    select
        day,
        object_type,
        stripe_count,
        landed_count,
        cardinality(missing_ids) as missing_count,
        cardinality(quarantined_ids) as quarantined_count,
        cardinality(extra_ids) as unknown_to_stripe_count,
        cardinality(mismatched_ids) as amount_differs_count,
        missing_ids,
        checked_at

    from results

)

select * from final
