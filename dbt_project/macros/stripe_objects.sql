{#- The latest version of every Stripe object of one type in raw.transactions
    (sampled on the dev target): what each Stripe staging model starts from. -#}
{% macro stripe_objects(object_type) -%}
    select * from {{ source('stripe', 'transactions') }} as transactions
    where object_type = '{{ object_type }}'
      and {{ is_latest_version('transactions') }}
      {{ dev_sample('created_at') }}
{%- endmacro %}

{#- No newer row (later event_time, then later Kafka offset) with the same id exists.

    raw.transactions already holds one row per object (the sink upserts), so this
    normally removes nothing; it keeps staging right for any append-only loader.
    It is written as NOT EXISTS rather than DISTINCT ON / row_number() on purpose:
    a view built that way stays flat, so the incremental marts' filters
    (`ingested_at > …`, `charge_id = any(…)`) reach the indexes on raw.transactions
    instead of forcing a sort of the whole table on every micro-batch. -#}
{% macro is_latest_version(alias) -%}
    not exists (
        select 1
        from {{ source('stripe', 'transactions') }} as newer
        where newer.object_id = {{ alias }}.object_id
          and (newer.event_time, newer.kafka_offset) > ({{ alias }}.event_time, {{ alias }}.kafka_offset)
    )
{%- endmacro %}
