{#- A stable key for a combination of attributes: the same values always give the
    same key (NULLs included), so facts can carry it without looking it up.

    Different values never share a key: a value's `~` and `|` are escaped (`~~`,
    `~|`), so neither a `|` inside a value nor the text '~null~' can pass for the
    separator or for NULL (a card country "~null~" would otherwise get the key of
    a card with no country, and the dimension two rows with one key). Values
    without `~` or `|` (every value Stripe sends) keep the keys they always had. -#}
{% macro surrogate_key(columns) -%}
    md5(concat_ws('|', {% for column in columns -%}
        coalesce(replace(replace({{ column }}::text, '~', '~~'), '|', '~|'), '~null~'){{ ", " if not loop.last }}
    {%- endfor %}))
{%- endmacro %}
