{#- On the dev target, keep only rows created within `dev_window_days` before the
    newest charge: a deterministic sample (the same rows on every run over the
    same data), unlike an unordered LIMIT. Other targets keep everything. -#}
{% macro dev_sample(created_column) -%}
    {%- if target.name == 'dev' -%}
    and {{ created_column }} >= (
        select max(created_at) - interval '{{ var("dev_window_days") | int }} days'
        from {{ source('stripe', 'transactions') }}
        where object_type = 'charge'
    )
    {%- endif -%}
{%- endmacro %}
