with

lag as (

    select * from {{ source('stream', 'lag') }}

),

final as (

    select
        observed_at,
        kafka_topic,
        kafka_partition,
        end_offset,
        committed_offset,
        greatest(end_offset - committed_offset, 0) as lag_messages

    from lag

)

select * from final
