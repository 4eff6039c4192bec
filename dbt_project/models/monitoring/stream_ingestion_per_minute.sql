with

batches as (

    select * from {{ source('stream', 'batches') }}

),

final as (

    select
        date_trunc('minute', committed_at) as minute,
        kafka_topic,
        count(*) as batch_count,
        sum(consumed) as messages_consumed,
        sum(inserted) as rows_inserted,
        sum(updated) as rows_updated,
        sum(duplicates) as duplicates_skipped,
        sum(quarantined) as messages_quarantined,
        max(committed_at) as last_committed_at

    from batches
    group by 1, 2

)

select * from final
