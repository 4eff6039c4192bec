{#- Stripe objects the stream landed (they are valid Stripe objects) that the marts
    keep but cannot fully use, one row per object and flag. Nothing here stops a
    build: the marts carry the flags (fct_transactions.currency_unknown,
    charge_status_unknown, uncounted_refund_count, uncounted_dispute_count; the
    status_unknown and currency_unknown of fct_balance_transactions and fct_payouts)
    and the Dagster check `flagged_records` on fct_transactions warns, naming the ids.
    Balance transactions and payouts belong to no charge here (charge_id null): a
    balance transaction's charge is in its payload, which fct_balance_transactions reads.

    Reads the stream's typed columns only (raw.transactions holds one row per
    object), never the payloads, so the check stays cheap on millions of rows. -#}

with

objects as (

    select
        object_id,
        object_type,
        charge_id,
        currency,
        status,
        created_at,
        ingested_at
    from {{ source('stripe', 'transactions') }}

),

charges as (

    select * from objects
    where object_type = 'charge'

),

currencies as (

    select * from {{ ref('dim_currencies') }}

),

unknown_currency as (

    select
        objects.*,
        'currency_unknown' as flag,
        format(
            'currency %L is not in seeds/currencies.csv: its amounts stay null until it is added',
            objects.currency
        ) as detail
    from objects
    where not exists (
            select 1 from currencies
            where currencies.currency_code = objects.currency
        )

),

unknown_status as (

    select
        objects.*,
        'status_unknown' as flag,
        format(
            'status %s is not one txstream knows for a %s (var stripe_statuses)%s',
            coalesce(quote_literal(objects.status), 'null'),
            objects.object_type,
            case
                when objects.object_type in ('refund', 'dispute') then ': left out of the charge''s amounts'
                else ''
            end
        ) as detail
    from objects
    where (objects.object_type = 'charge' and not {{ is_known_status('objects.status', 'charge') }})
        or (objects.object_type = 'refund' and not {{ is_known_status('objects.status', 'refund') }})
        or (objects.object_type = 'dispute' and not {{ is_known_status('objects.status', 'dispute') }})
        or (
            objects.object_type = 'balance_transaction'
            and not {{ is_known_status('objects.status', 'balance_transaction') }}
        )
        or (objects.object_type = 'payout' and not {{ is_known_status('objects.status', 'payout') }})

),

without_charge as (

    select
        objects.*,
        'charge_missing' as flag,
        format(
            'its charge %s has not landed: in no fact until it does',
            objects.charge_id
        ) as detail
    from objects
    where objects.object_type in ('refund', 'dispute')
        and not exists (
            select 1 from charges
            where charges.object_id = objects.charge_id
        )

),

other_currency_than_charge as (

    select
        objects.*,
        'currency_differs_from_charge' as flag,
        format(
            'in %L, its charge %s in %L: left out of the charge''s amounts',
            objects.currency, charges.object_id, charges.currency
        ) as detail
    from objects
    inner join charges
        on objects.charge_id = charges.object_id
    where objects.object_type in ('refund', 'dispute')
        and objects.currency <> charges.currency

),

flagged as (

    select * from unknown_currency
    union all
    select * from unknown_status
    union all
    select * from without_charge
    union all
    select * from other_currency_than_charge

),

final as (

    select
        object_id,
        object_type,
        charge_id,
        flag,
        detail,
        created_at,
        ingested_at

    from flagged

)

select * from final
