with

source as (

    {{ stripe_objects('charge') }}

),

renamed as (

    select
        -- ids
        source.object_id as charge_id,
        source.customer_id,
        charge.payment_intent as payment_intent_id,
        charge.payment_method as payment_method_id,

        -- amounts, in the minor unit of the currency
        source.amount as amount_minor,
        coalesce(charge.amount_captured, case when charge.captured then source.amount else 0 end)
            as amount_captured_minor,
        charge.amount_refunded as amount_refunded_minor,
        source.currency as currency_code,

        -- status and outcome
        source.status as charge_status,
        charge.paid as is_paid,
        charge.captured as is_captured,
        charge.refunded as is_refunded,
        charge.disputed as is_disputed,
        charge.failure_code,
        charge.failure_message,
        outcome.type as outcome_type,
        outcome.network_status,
        outcome.reason as outcome_reason,
        outcome.network_decline_code,
        outcome.advice_code,
        outcome.risk_level,
        outcome.risk_score,

        -- payment method
        payment_method.type as payment_method_type,
        card.brand as card_brand,
        card.funding as card_funding,
        card.country as card_country,
        card.network as card_network,
        card.wallet ->> 'type' as wallet_type,

        -- customer
        billing_details.address ->> 'country' as billing_country,

        -- provenance and timestamps
        source.livemode as is_livemode,
        source.source as data_source,
        source.created_at,
        source.event_time as observed_at,
        source.ingested_at,
        source.landed_xid

    from source
    {#- One jsonb_to_record per nested object: the payload is decompressed once per
        row, where `payload -> 'a' ->> 'b'` for each column would decompress it again
        for every field (minutes instead of seconds over a million charges). #}
    left join
        lateral jsonb_to_record(source.payload)
            as charge (
                payment_intent text, payment_method text, amount_captured bigint, amount_refunded bigint,
                paid boolean, captured boolean, refunded boolean, disputed boolean,
                failure_code text, failure_message text,
                outcome jsonb, payment_method_details jsonb, billing_details jsonb
            )
        on true
    left join
        lateral jsonb_to_record(charge.outcome)
            as outcome (
                type text, network_status text, reason text, network_decline_code text, advice_code text,
                risk_level text, risk_score integer
            )
        on true
    left join
        lateral jsonb_to_record(charge.payment_method_details)
            as payment_method (type text, card jsonb)
        on true
    left join
        lateral jsonb_to_record(payment_method.card)
            as card (
                brand text, funding text, country text, network text, wallet jsonb
            )
        on true
    left join
        lateral jsonb_to_record(charge.billing_details)
            as billing_details (address jsonb)
        on true

)

select * from renamed
