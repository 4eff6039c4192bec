with

source as (

    {{ stripe_objects('payout') }}

),

currencies as (

    select * from {{ ref('currencies') }}

),

renamed as (

    select
        -- ids
        source.object_id as payout_id,
        -- The payout's own balance transaction: an id, or the object when the request expanded it.
        case jsonb_typeof(payout.balance_transaction)
            when 'string' then payout.balance_transaction #>> '{}'
            when 'object' then payout.balance_transaction ->> 'id'
        end as balance_transaction_id,

        -- amount, in the minor unit of the currency and in major units
        source.amount as amount_minor,
        source.currency as currency_code,
        {{ minor_to_major('source.amount', 'currencies.minor_unit_exponent') }} as amount,

        -- status and kind
        source.status as payout_status,
        payout.automatic as is_automatic,
        payout.method as payout_method,
        payout.type as payout_type,
        payout.failure_code,
        payout.failure_message,
        payout.description,

        -- provenance and timestamps
        source.livemode as is_livemode,
        source.source as data_source,
        source.created_at,
        to_timestamp(payout.arrival_date) as arrival_at,
        source.event_time as observed_at,
        source.ingested_at,
        source.landed_xid

    from source
    left join currencies
        on source.currency = currencies.currency
    -- The payload is decompressed once per row (see stg_stripe__charges).
    left join lateral jsonb_to_record(source.payload) as payout (
        balance_transaction jsonb, automatic boolean, method text, type text, failure_code text,
        failure_message text, description text, arrival_date bigint
    ) on true

)

select * from renamed
