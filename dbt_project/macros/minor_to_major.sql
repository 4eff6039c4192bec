{#- Stripe amounts are integers in the currency's minor unit: 1000 JPY is 1000
    (exponent 0), £10.00 is 1000 (exponent 2), 10.000 KWD is 10000 (exponent 3).
    Dividing by 10^exponent is exact; rounding to `exponent` places only sets the
    scale, so 10000 KWD minor units read 10.000, not 10.0000000000000000. -#}
{% macro minor_to_major(minor_amount, exponent) -%}
    round({{ minor_amount }}::numeric / power(10::numeric, {{ exponent }}), {{ exponent }})
{%- endmacro %}
