{#- The rows of marts.fct_transactions, as the CTEs `charges` … `final` (select from `final`):
    the one definition of a charge's facts, shared by the table and by the live view
    fct_transactions_live, so both compute every amount with the same formulas.

    facts      the facts relation already built (the table itself, or ref('fct_transactions')).
    watermark  an xid8 literal (macros/incremental.sql): only the charges that can have
               changed since the build that wrote the facts at that watermark, i.e. the
               incremental selection. none: every charge (a full build).
    live       computed when a view is read rather than by a build: no lineage of a build
               (null transformed_xid and source_snapshot_xmin).

    A new column goes at the end of `final`: an incremental build of the table appends it
    there (on_schema_change), and the live view unions the table's rows with these by
    position. -#}
{% macro charge_facts(facts, watermark=none, live=false) -%}
{% if watermark is not none %}
{{ refetched_rates(watermark) }},

affected_charges as (

    select charge_id from {{ ref('stg_stripe__charges') }}
    where landed_xid >= {{ watermark }}

    union

    select charge_id from {{ ref('stg_stripe__refunds') }}
    where landed_xid >= {{ watermark }}

    union

    select charge_id from {{ ref('stg_stripe__disputes') }}
    where landed_xid >= {{ watermark }}

    union

    {{ rows_awaiting_rates(facts, 'charge_id', 'charge_date') }}

),
{% endif %}

{#- `= any(array(…))` rather than `in (select …)`: PostgreSQL then looks the few
    affected charges up by index, instead of unpacking every payload of the
    view and hash-joining (it underestimates what jsonb_to_record costs). #}
charges as (

    select * from {{ ref('stg_stripe__charges') }}
    {% if watermark is not none %}
    where charge_id = any(array(select affected_charges.charge_id from affected_charges))
    {% endif %}

),

refunds as (

    select * from {{ ref('stg_stripe__refunds') }}
    {% if watermark is not none %}
    where charge_id = any(array(select affected_charges.charge_id from affected_charges))
    {% endif %}

),

disputes as (

    select * from {{ ref('stg_stripe__disputes') }}
    {% if watermark is not none %}
    where charge_id = any(array(select affected_charges.charge_id from affected_charges))
    {% endif %}

),

currencies as (

    select * from {{ ref('dim_currencies') }}

),

gbp_rates as (

    select * from {{ ref('stg_forex__rates') }}
    where base_currency = 'gbp'

),

{# A refund or dispute counts towards the charge's amounts only when txstream
    knows its status and it is in the charge's currency (Stripe never refunds in
    another): otherwise what it did to the money is unknown, so it is left out,
    counted in uncounted_*_count and listed in monitoring.flagged_records, never
    guessed. Aggregated per charge and currency, so the charges are read once. #}
refunds_per_charge_and_currency as (

    select
        charge_id,
        currency_code,
        count(*) as refund_count,
        count(*) filter (where {{ is_known_status('refund_status', 'refund') }}) as known_status_refund_count,
        -- Pending refunds have left the merchant's balance too; failed and
        -- canceled ones never did.
        coalesce(sum(amount_minor) filter (where refund_status in ('succeeded', 'pending')), 0)
            as refunded_amount_minor

    from refunds
    group by charge_id, currency_code

),

refunds_per_charge as (

    select
        charge_id,
        sum(refund_count)::bigint as refund_count

    from refunds_per_charge_and_currency
    group by charge_id

),

disputes_per_charge_and_currency as (

    select
        charge_id,
        currency_code,
        count(*) filter (where {{ is_known_status('dispute_status', 'dispute') }}) as known_status_dispute_count,
        -- Funds are withdrawn while a chargeback is open or lost; inquiries
        -- (warning_*) withdraw nothing and a won dispute returns the funds.
        coalesce(sum(amount_minor) filter (where dispute_status in ('needs_response', 'under_review', 'lost')), 0)
            as disputed_amount_minor

    from disputes
    group by charge_id, currency_code

),

disputes_per_charge as (

    select
        charge_id,
        count(*) as dispute_count,
        (array_agg(dispute_status order by created_at desc, dispute_id desc))[1] as latest_dispute_status

    from disputes
    group by charge_id

),

in_major_units as (

    select
        charges.charge_id,
        charges.customer_id,
        charges.currency_code,
        (charges.created_at at time zone 'UTC')::date as charge_date,
        charges.created_at,
        charges.charge_status,
        charges.charge_status = 'succeeded' as is_successful,
        not {{ is_known_status('charges.charge_status', 'charge') }} as charge_status_unknown,
        currencies.currency_code is null as currency_unknown,
        charges.is_livemode,
        charges.data_source,
        charges.payment_method_type,
        charges.card_brand,
        charges.card_funding,
        charges.card_country,
        charges.wallet_type,
        charges.outcome_type,
        charges.network_status,
        charges.outcome_reason,
        charges.failure_code,
        charges.risk_level,
        charges.amount_minor,
        currencies.minor_unit_exponent,
        {{ minor_to_major('charges.amount_minor', 'currencies.minor_unit_exponent') }} as amount,
        {{ minor_to_major('charges.amount_captured_minor', 'currencies.minor_unit_exponent') }} as captured_amount,
        {{ minor_to_major(
            'coalesce(counted_refunds.refunded_amount_minor, 0)', 'currencies.minor_unit_exponent'
        ) }} as refunded_amount,
        {{ minor_to_major(
            'coalesce(counted_disputes.disputed_amount_minor, 0)', 'currencies.minor_unit_exponent'
        ) }} as disputed_amount,
        coalesce(refunds_per_charge.refund_count, 0) as refund_count,
        coalesce(refunds_per_charge.refund_count, 0) - coalesce(counted_refunds.known_status_refund_count, 0)
            as uncounted_refund_count,
        coalesce(disputes_per_charge.dispute_count, 0) as dispute_count,
        coalesce(disputes_per_charge.dispute_count, 0) - coalesce(counted_disputes.known_status_dispute_count, 0)
            as uncounted_dispute_count,
        disputes_per_charge.latest_dispute_status,
        charges.ingested_at as charge_ingested_at

    from charges
    left join currencies
        on charges.currency_code = currencies.currency_code
    left join refunds_per_charge
        on charges.charge_id = refunds_per_charge.charge_id
    left join refunds_per_charge_and_currency as counted_refunds
        on charges.charge_id = counted_refunds.charge_id
            and charges.currency_code = counted_refunds.currency_code
    left join disputes_per_charge
        on charges.charge_id = disputes_per_charge.charge_id
    left join disputes_per_charge_and_currency as counted_disputes
        on charges.charge_id = counted_disputes.charge_id
            and charges.currency_code = counted_disputes.currency_code

),

with_rates as (

    select
        in_major_units.*,
        in_major_units.captured_amount - in_major_units.refunded_amount - in_major_units.disputed_amount
            as net_amount,
        -- GBP is worth exactly 1 GBP: never looked up, whatever raw.forex_rates holds.
        case when in_major_units.currency_code = 'gbp' then 1 else gbp_rates.rate end as fx_rate,
        case
            when in_major_units.currency_code = 'gbp' then in_major_units.charge_date
            else gbp_rates.effective_date
        end as fx_rate_effective_date

    from in_major_units
    left join gbp_rates
        on in_major_units.charge_date = gbp_rates.rate_date
            and in_major_units.currency_code = gbp_rates.quote_currency
            and in_major_units.currency_code <> 'gbp'

),

final as (

    select
        -- keys
        charge_id,
        customer_id,
        {{ surrogate_key(['payment_method_type', 'card_brand', 'card_funding', 'card_country', 'wallet_type']) }}
            as payment_method_key,
        {{ surrogate_key([
            'charge_status', 'outcome_type', 'network_status', 'outcome_reason', 'failure_code', 'risk_level',
        ]) }} as outcome_key,
        currency_code,
        charge_date,

        -- the charge
        created_at,
        charge_status,
        is_successful,
        is_livemode,
        data_source,
        refund_count,
        dispute_count,
        latest_dispute_status,

        -- amounts in the charge currency
        amount_minor,
        amount,
        captured_amount,
        refunded_amount,
        disputed_amount,
        net_amount,

        -- amounts in GBP (null when no rate applies: see fx_rate_missing)
        fx_rate,
        fx_rate_effective_date,
        {{ to_gbp('amount') }} as amount_gbp,
        {{ to_gbp('captured_amount') }} as captured_amount_gbp,
        {{ to_gbp('refunded_amount') }} as refunded_amount_gbp,
        {{ to_gbp('disputed_amount') }} as disputed_amount_gbp,
        {{ to_gbp('net_amount') }} as net_amount_gbp,
        amount is null or fx_rate is null as fx_rate_missing,

        -- flags: what the fact holds but cannot fully use (monitoring.flagged_records lists them)
        currency_unknown,
        charge_status_unknown,
        uncounted_refund_count,
        uncounted_dispute_count,

        -- lineage
        charge_ingested_at,
        now() as transformed_at,
        {%- if live %}
        -- Computed as the view is read: no build wrote the row, and pg_current_xact_id() would
        -- give every dashboard query a transaction id of its own (an error on a standby).
        null::xid8 as transformed_xid,
        null::xid8 as source_snapshot_xmin
        {%- else %}
        -- commit-ordered: agg_daily_revenue re-reads the facts written at or after its watermark
        pg_current_xact_id() as transformed_xid,
        {{ source_snapshot_xmin() }} as source_snapshot_xmin
        {%- endif %}

    from with_rates

)
{%- endmacro %}
