{#- The statuses txstream knows for a Stripe object type (var `stripe_statuses` in
    dbt_project.yml). -#}
{% macro known_statuses(object_type) -%}
    {{ return(var('stripe_statuses')[object_type]) }}
{%- endmacro %}

{#- True when `status_column` holds a status txstream knows for `object_type`;
    false for any other value and for NULL. -#}
{% macro is_known_status(status_column, object_type) -%}
    coalesce({{ status_column }} in (
        {%- for status in known_statuses(object_type) -%}
            '{{ status }}'{{ ", " if not loop.last }}
        {%- endfor -%}
    ), false)
{%- endmacro %}
