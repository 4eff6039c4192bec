with

quarantined as (

    select * from {{ source('stripe', 'quarantined_events') }}

),

final as (

    select
        date_trunc('minute', quarantined_at) as minute,
        reason,
        count(*) as event_count

    from quarantined
    group by 1, 2

)

select * from final
