{#- An amount in the charge currency → GBP, with `fx_rate` = units of that
    currency per 1 GBP. GBP amounts are taken as they are (no division, so their
    scale stays that of pence); without a rate the result is NULL, never a guess. -#}
{% macro to_gbp(amount_column, currency_column='currency_code', rate_column='fx_rate') -%}
    case
        when {{ currency_column }} = 'gbp' then {{ amount_column }}
        else {{ amount_column }} / {{ rate_column }}
    end
{%- endmacro %}
