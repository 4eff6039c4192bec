{#- Production (the `full` target) uses custom schemas as named (staging, marts,
    monitoring), not prefixed with the target schema: the migrations create them
    and grant the dashboards' read-only role access to marts and monitoring only.
    Every other target (dev) builds into `<schema>_<target>` (marts_dev, …), which
    dbt creates and the dashboards cannot read, so a sample build never replaces
    what they show. -#}
{% macro generate_schema_name(custom_schema_name, node) -%}
    {%- set schema_name = (custom_schema_name or target.schema) | trim -%}
    {{ schema_name if is_production_target() else schema_name ~ '_' ~ target.name }}
{%- endmacro %}

{% macro is_production_target() -%}
    {{ return(target.name == 'full') }}
{%- endmacro %}
