{{ config(meta={'dagster': {'automation': 'on_definition_change'}}) }}

{#- Every calendar day a charge can carry: the stream accepts `created` from
    2000-01-01 up to 2100 (txstream_spark.transform), so the fact's foreign key
    always finds its day. Static: rebuilt only when this file changes. -#}

with

days as (

    select day::date as date_day
    from generate_series('2000-01-01'::date, '2099-12-31'::date, interval '1 day') as day

),

final as (

    select
        date_day,
        extract(isoyear from date_day)::integer as iso_year,
        extract(week from date_day)::integer as iso_week,
        extract(year from date_day)::integer as year,
        extract(quarter from date_day)::integer as quarter,
        extract(month from date_day)::integer as month,
        to_char(date_day, 'FMMonth') as month_name,
        extract(day from date_day)::integer as day_of_month,
        extract(isodow from date_day)::integer as iso_day_of_week,
        to_char(date_day, 'FMDay') as day_name,
        extract(isodow from date_day) >= 6 as is_weekend,
        date_trunc('week', date_day)::date as week_start_date,
        date_trunc('month', date_day)::date as month_start_date

    from days

)

select * from final
