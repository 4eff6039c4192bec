{#- Custom schemas are used as named (staging, marts, monitoring), not prefixed with
    the target schema: they are created by the migrations, which grant the
    dashboards' read-only role access to marts and monitoring only. -#}
{% macro generate_schema_name(custom_schema_name, node) -%}
    {{ (custom_schema_name or target.schema) | trim }}
{%- endmacro %}
