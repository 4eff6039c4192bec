with

lag as (

    select * from {{ source('stream', 'lag') }}

),

latest as (

    select distinct on (kafka_topic, kafka_partition) *
    from lag
    order by kafka_topic asc, kafka_partition asc, observed_at desc

),

final as (

    select
        kafka_topic,
        kafka_partition,
        observed_at,
        end_offset,
        committed_offset,
        greatest(end_offset - committed_offset, 0) as lag_messages,
        extract(epoch from now() - observed_at) as seconds_since_observed

    from latest

)

select * from final
