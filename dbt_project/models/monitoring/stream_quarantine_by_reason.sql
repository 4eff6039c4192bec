{#- Counts only: the quarantined bytes, keys and headers stay in raw. -#}

with

quarantined as (

    select * from {{ source('stripe', 'quarantined_events') }}

),

final as (

    select
        reason,
        kafka_topic,
        count(*) as event_count,
        count(*) filter (where replayed_at is null) as pending_count,
        count(*) filter (where replayed_at is not null) as replayed_count,
        count(*) filter (where quarantined_at > now() - interval '1 hour') as event_count_last_hour,
        min(quarantined_at) as first_quarantined_at,
        max(quarantined_at) as last_quarantined_at

    from quarantined
    group by 1, 2

)

select * from final
