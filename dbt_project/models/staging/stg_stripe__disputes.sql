with

source as (

    {{ stripe_objects('dispute') }}

),

renamed as (

    select
        -- ids
        source.object_id as dispute_id,
        source.charge_id,

        -- amount, in the minor unit of the currency
        source.amount as amount_minor,
        source.currency as currency_code,

        -- status
        source.status as dispute_status,
        dispute.reason as dispute_reason,
        dispute.payment_method_details -> 'card' ->> 'case_type' as card_case_type,
        dispute.payment_method_details -> 'card' ->> 'network_reason_code' as network_reason_code,
        dispute.is_charge_refundable,
        to_timestamp((dispute.evidence_details ->> 'due_by')::bigint) as evidence_due_by,

        -- provenance and timestamps
        source.livemode as is_livemode,
        source.source as data_source,
        source.created_at,
        source.event_time as observed_at,
        source.ingested_at,
        source.landed_xid

    from source
    -- The payload is decompressed once per row (see stg_stripe__charges).
    left join lateral jsonb_to_record(source.payload) as dispute (
        reason text, is_charge_refundable boolean, payment_method_details jsonb, evidence_details jsonb
    ) on true

)

select * from renamed
