"""Currencies and their minor-unit exponents, read from the dbt seed (the one source of truth).

Stripe amounts are integers in the currency's minor unit: 1000 JPY is `1000`
(zero-decimal), £10.00 is `1000`, 10.000 KWD is `10000` (three-decimal).
"""

from __future__ import annotations

import csv
import functools
from dataclasses import dataclass
from decimal import Decimal

from txstream_dagster.paths import dbt_project_dir


@dataclass(frozen=True)
class Currency:
    code: str  # lower-case ISO 4217, as Stripe writes it
    name: str
    exponent: int

    def to_major(self, minor_amount: int) -> Decimal:
        return Decimal(minor_amount).scaleb(-self.exponent)

    def to_minor(self, major_amount: Decimal | str | int) -> int:
        minor = Decimal(major_amount).scaleb(self.exponent)
        if minor != minor.to_integral_value():
            raise ValueError(f"{major_amount} {self.code.upper()} has more than {self.exponent} decimals")
        return int(minor)


@functools.cache
def currencies() -> dict[str, Currency]:
    with open(dbt_project_dir() / "seeds" / "currencies.csv", newline="") as handle:
        return {
            row["currency"]: Currency(row["currency"], row["currency_name"], int(row["minor_unit_exponent"]))
            for row in csv.DictReader(handle)
        }


def currency(code: str) -> Currency:
    try:
        return currencies()[code.lower()]
    except KeyError:
        raise KeyError(f"{code!r} is not a currency txstream knows (dbt_project/seeds/currencies.csv)") from None
