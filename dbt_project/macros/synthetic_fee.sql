{#- The synthetic account's Stripe fee on a charge, in minor units of the settlement
    currency (GBP pence): the rule txstream_dagster/defs/stripe_source/synthetic_fees.py
    charges with, which the test fct_balance_transactions_fees_follow_the_rule recomputes.
    The two must change together (tests/test_dbt_balance.py lands a fee of that module
    for every country group and checks this macro agrees).

    percent = 1.5 for a card issued in GB, 2.5 in the EEA, 3.25 anywhere else (or
              unknown), + 2 when the charge is in another currency than GBP;
    fee     = round-half-up(settled pence × percent / 100) + 20.

    PostgreSQL's round(numeric) takes ties away from zero, as Python's ROUND_HALF_UP. -#}
{% macro synthetic_fee(settled_minor, card_country, charge_currency) -%}
    (round({{ settled_minor }}::numeric * {{ synthetic_fee_percent(card_country, charge_currency) }} / 100) + 20)
{%- endmacro %}

{% macro synthetic_fee_percent(card_country, charge_currency) -%}
    {%- set eea_countries = [
        'AT', 'BE', 'BG', 'HR', 'CY', 'CZ', 'DK', 'EE', 'FI', 'FR', 'DE', 'GR', 'HU', 'IE', 'IT',
        'LV', 'LT', 'LU', 'MT', 'NL', 'PL', 'PT', 'RO', 'SK', 'SI', 'ES', 'SE', 'IS', 'LI', 'NO',
    ] -%}
    (
        case
            when {{ card_country }} = 'GB' then 1.5
            when {{ card_country }} in ('{{ eea_countries | join("', '") }}') then 2.5
            else 3.25
        end
        + case when {{ charge_currency }} is distinct from 'gbp' then 2 else 0 end
    )
{%- endmacro %}
