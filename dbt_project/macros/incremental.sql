{#- The instant after which source rows may not be reflected in {{ this }} yet:
    the newest `stamp_column` of {{ this }} minus `lookback_seconds` (by default
    the lookback in dbt_project.yml, which covers writers outside dbt).

    It is looked up before the model's query is planned and written into it as a
    literal, so PostgreSQL estimates "ingested_at > <that instant>" from its
    statistics (a few rows: index scans). A subquery there would be planned as a
    third of the table and read everything on every micro-batch. -#}
{% macro changed_since(stamp_column, lookback_seconds=none) -%}
    {%- if execute -%}
        {%- set watermark_query -%}
            select (
                coalesce(max({{ stamp_column }}), '-infinity'::timestamptz)
                - make_interval(secs => {{ (var("incremental_lookback_seconds") if lookback_seconds is none else lookback_seconds) | int }})
            )::text
            from {{ this }}
        {%- endset -%}
        {%- set watermark = run_query(watermark_query).columns[0].values()[0] -%}
        '{{ watermark }}'::timestamptz
    {%- else -%}
        '-infinity'::timestamptz
    {%- endif -%}
{%- endmacro %}
