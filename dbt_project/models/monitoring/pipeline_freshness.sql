{#- One row: how current each stage of the pipeline is. -#}

with

transactions as (

    select
        max(event_time) as newest_event_time,
        max(ingested_at) as newest_ingested_at,
        max(created_at) filter (where object_type = 'charge') as newest_charge_created_at
    from {{ source('stripe', 'transactions') }}

),

rates as (

    select
        max(rate_date) as last_forex_rate_date,
        max(effective_date) as last_forex_effective_date,
        max(fetched_at) as last_forex_fetched_at
    from {{ source('forex', 'rates') }}

),

batches as (

    select max(committed_at) as last_batch_committed_at
    from {{ source('stream', 'batches') }}

),

final as (

    select
        transactions.newest_event_time,
        transactions.newest_ingested_at,
        transactions.newest_charge_created_at,
        batches.last_batch_committed_at,
        rates.last_forex_rate_date,
        rates.last_forex_effective_date,
        rates.last_forex_fetched_at,
        extract(epoch from now() - transactions.newest_event_time) as seconds_since_newest_event,
        extract(epoch from now() - transactions.newest_ingested_at) as seconds_since_newest_ingestion,
        (now() at time zone 'UTC')::date - rates.last_forex_rate_date as days_since_last_forex_rate,
        now() as observed_at

    from transactions
    cross join rates
    cross join batches

)

select * from final
