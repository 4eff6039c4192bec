"""The synthetic account's Stripe fees, modelled on Stripe's published UK pricing (standard, 2024).

A UK account settles in GBP. Each succeeded charge pays, on its settled GBP amount:

- 1.5% + 20p for a card issued in the UK;
- 2.5% + 20p for a card issued in the EEA;
- 3.25% + 20p for any other (international) card;
- plus 2% when the charge is in another currency than GBP (currency conversion).

The percentage is rounded half up to a penny, then 20p is added. Refunds pay no fee and get
none back; a lost dispute costs £20.00. dbt's `fct_balance_transactions_fees_follow_the_rule`
test recomputes every synthetic fee with this rule (macros/synthetic_fee.sql), so the two
must change together.

Stripe's exchange rate for a conversion is the reference (mid-market) rate less a small spread
that varies from charge to charge; the 2% above is charged as a fee on top, as Stripe does.
"""

from __future__ import annotations

from decimal import ROUND_HALF_UP, Decimal

SETTLEMENT_CURRENCY = "gbp"
FIXED_FEE_PENCE = 20
DISPUTE_FEE_PENCE = 2_000
DOMESTIC_COUNTRY = "GB"
EEA_COUNTRIES = frozenset(
    {
        *("AT", "BE", "BG", "HR", "CY", "CZ", "DK", "EE", "FI", "FR", "DE", "GR", "HU", "IE", "IT"),
        *("LV", "LT", "LU", "MT", "NL", "PL", "PT", "RO", "SK", "SI", "ES", "SE", "IS", "LI", "NO"),
    }
)
PERCENT_DOMESTIC = Decimal("1.5")
PERCENT_EEA = Decimal("2.5")
PERCENT_INTERNATIONAL = Decimal("3.25")
PERCENT_CURRENCY_CONVERSION = Decimal("2")
# Stripe's rate sits below mid-market by about this much, give or take SPREAD_JITTER.
SPREAD = 0.0035
SPREAD_JITTER = 0.0015


def fee_percent(card_country: str | None, charge_currency: str) -> Decimal:
    if card_country == DOMESTIC_COUNTRY:
        percent = PERCENT_DOMESTIC
    elif card_country in EEA_COUNTRIES:
        percent = PERCENT_EEA
    else:
        percent = PERCENT_INTERNATIONAL
    if charge_currency != SETTLEMENT_CURRENCY:
        percent += PERCENT_CURRENCY_CONVERSION
    return percent


def charge_fee(settled_pence: int, card_country: str | None, charge_currency: str) -> int:
    """Stripe's fee, in pence, on a charge that settled `settled_pence` into the GBP balance."""
    percent = fee_percent(card_country, charge_currency)
    variable = (Decimal(settled_pence) * percent / 100).quantize(Decimal(1), rounding=ROUND_HALF_UP)
    return int(variable) + FIXED_FEE_PENCE
