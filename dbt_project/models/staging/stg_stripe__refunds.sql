with

source as (

    {{ stripe_objects('refund') }}

),

renamed as (

    select
        -- ids
        source.object_id as refund_id,
        source.charge_id,

        -- amount, in the minor unit of the currency
        source.amount as amount_minor,
        source.currency as currency_code,

        -- status
        source.status as refund_status,
        refund.reason as refund_reason,
        refund.destination_details -> 'card' ->> 'type' as card_refund_type,

        -- provenance and timestamps
        source.livemode as is_livemode,
        source.source as data_source,
        source.created_at,
        source.event_time as observed_at,
        source.ingested_at,
        source.landed_xid

    from source
    -- The payload is decompressed once per row (see stg_stripe__charges).
    left join lateral jsonb_to_record(source.payload) as refund (
        reason text, destination_details jsonb
    ) on true

)

select * from renamed
