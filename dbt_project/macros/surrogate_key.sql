{#- A stable key for a combination of attributes: the same values always give the
    same key (NULLs included), so facts can carry it without looking it up. -#}
{% macro surrogate_key(columns) -%}
    md5(concat_ws('|', {% for column in columns -%}
        coalesce({{ column }}::text, '~null~'){{ ", " if not loop.last }}
    {%- endfor %}))
{%- endmacro %}
