with

source as (

    {{ stripe_objects('balance_transaction') }}

),

currencies as (

    select * from {{ ref('currencies') }}

),

renamed as (

    select
        -- ids
        source.object_id as balance_transaction_id,
        -- Stripe sends the source as its id, or as the whole object when the request expanded it.
        case jsonb_typeof(balance_transaction.source)
            when 'string' then balance_transaction.source #>> '{}'
            when 'object' then balance_transaction.source ->> 'id'
        end as source_id,
        source.payout_id,

        -- amounts in the settlement currency: signed (money out of the balance is negative)
        source.amount as amount_minor,
        balance_transaction.fee as fee_minor,
        balance_transaction.net as net_minor,
        source.currency as currency_code,
        {{ minor_to_major('source.amount', 'currencies.minor_unit_exponent') }} as amount,
        {{ minor_to_major('balance_transaction.fee', 'currencies.minor_unit_exponent') }} as fee,
        {{ minor_to_major('balance_transaction.net', 'currencies.minor_unit_exponent') }} as net,
        balance_transaction.exchange_rate,

        -- what it is
        source.status as balance_transaction_status,
        balance_transaction.type as balance_transaction_type,
        balance_transaction.reporting_category,
        balance_transaction.description,

        -- provenance and timestamps
        source.source as data_source,
        source.created_at,
        to_timestamp(balance_transaction.available_on) as available_on,
        source.event_time as observed_at,
        source.ingested_at,
        source.landed_xid

    from source
    left join currencies
        on source.currency = currencies.currency
    -- The payload is decompressed once per row (see stg_stripe__charges).
    left join lateral jsonb_to_record(source.payload) as balance_transaction (
        fee bigint, net bigint, exchange_rate numeric, type text, reporting_category text, description text,
        source jsonb, available_on bigint
    ) on true

)

select * from renamed
