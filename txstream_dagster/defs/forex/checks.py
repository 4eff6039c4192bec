"""Asset checks on `forex_rates`.

In a run that materialised partitions, each check looks at those dates; run
on its own (from the asset's Checks tab) it audits the whole table.
"""

from collections import defaultdict
from dataclasses import dataclass
from datetime import date
from decimal import Decimal

import dagster as dg

from txstream_dagster.defs.forex.assets import forex_rates, partition_days
from txstream_dagster.defs.forex.rates import BASE
from txstream_dagster.resources import PostgresResource

# GBP's largest daily move since 1999 was about 8% (24 June 2016); a larger move
# is a devaluation or a bad rate, and either deserves a person's look.
MAX_DAY_OVER_DAY_FACTOR = Decimal("1.10")
LISTED = 50  # rows listed in check metadata; counts are always complete


@dataclass(frozen=True)
class CheckedDates:
    first: date | None  # None: the whole table
    last: date | None

    def params(self) -> dict[str, date | None]:
        return {"first": self.first, "last": self.last}

    def describe(self) -> str:
        return "all dates" if self.first is None else f"{self.first} … {self.last}"


def checked_dates(context: dg.AssetCheckExecutionContext) -> CheckedDates:
    if context.has_partition_key or context.has_partition_key_range:
        days = partition_days(context.partition_keys)
        return CheckedDates(days[0], days[-1])
    return CheckedDates(None, None)


# Dates are UTC calendar dates on both sides: the partition key and created_at in UTC.
CHARGES_WITHOUT_RATES = """
WITH charge_days AS (
    SELECT (created_at AT TIME ZONE 'UTC')::date AS day, currency, count(*) AS charges
    FROM raw.transactions
    WHERE object_type = 'charge'
      AND (%(first)s::date IS NULL OR created_at >= (%(first)s::date)::timestamp AT TIME ZONE 'UTC')
      AND (%(last)s::date IS NULL OR created_at < (%(last)s::date + 1)::timestamp AT TIME ZONE 'UTC')
    GROUP BY 1, 2
)
SELECT c.day, c.currency, c.charges,
       EXISTS (SELECT FROM raw.forex_rates p WHERE p.rate_date = c.day AND p.base = %(base)s) AS day_has_rates
FROM charge_days c
WHERE NOT EXISTS (
    SELECT FROM raw.forex_rates f WHERE f.rate_date = c.day AND f.base = %(base)s AND f.quote = c.currency
)
ORDER BY c.day, c.currency
"""


def charges_without_rates(postgres: PostgresResource, dates: CheckedDates) -> list[tuple[date, str, int, bool]]:
    return postgres.fetch_all(CHARGES_WITHOUT_RATES, {**dates.params(), "base": BASE})


@dg.asset_check(asset=forex_rates, description="Every date with charges has a materialised forex partition.")
def charge_dates_have_forex_rates(
    context: dg.AssetCheckExecutionContext, postgres: PostgresResource
) -> dg.AssetCheckResult:
    dates = checked_dates(context)
    missing = sorted({day for day, _, _, day_has_rates in charges_without_rates(postgres, dates) if not day_has_rates})
    return dg.AssetCheckResult(
        passed=not missing,
        severity=dg.AssetCheckSeverity.ERROR,
        description=(
            f"{len(missing)} date(s) with charges have no forex rates at all: backfill forex_rates "
            f"from {missing[0]} to {missing[-1]}."
            if missing
            else None
        ),
        metadata={
            "checked_dates": dates.describe(),
            "dates_without_rates": len(missing),
            "first_dates_without_rates": [day.isoformat() for day in missing[:LISTED]],
        },
    )


@dg.asset_check(
    asset=forex_rates,
    description="Every currency charged on a date has a rate for that date (WARN lists those no source publishes).",
)
def charge_currencies_have_forex_rates(
    context: dg.AssetCheckExecutionContext, postgres: PostgresResource
) -> dg.AssetCheckResult:
    """Currencies no configured source publishes (KWD and BHD when only ECB data is available)
    legitimately have no rate: WARN, listing them, rather than ERROR — the charges still land
    and the dbt layer flags them `fx_rate_missing`. Dates with no partition at all are the
    ERROR of `charge_dates_have_forex_rates`, so they are not repeated here."""
    dates = checked_dates(context)
    by_currency: dict[str, list[tuple[date, int]]] = defaultdict(list)
    for day, currency, charges, day_has_rates in charges_without_rates(postgres, dates):
        if day_has_rates:
            by_currency[currency].append((day, charges))
    rows = [
        f"| {currency} | {len(days)} | {days[0][0]} | {days[-1][0]} | {sum(n for _, n in days)} |"
        for currency, days in sorted(by_currency.items())
    ]
    return dg.AssetCheckResult(
        passed=not by_currency,
        severity=dg.AssetCheckSeverity.WARN,
        description=(
            f"No rate for {', '.join(sorted(by_currency))} on some dates with charges: no configured source "
            "publishes them there; dbt flags those charges fx_rate_missing."
            if by_currency
            else None
        ),
        metadata={
            "checked_dates": dates.describe(),
            "currencies_without_rates": sorted(by_currency),
            "charges_without_rates": sum(n for days in by_currency.values() for _, n in days),
            "detail": dg.MetadataValue.md(
                "\n".join(["| currency | dates | first | last | charges |", "| --- | --- | --- | --- | --- |", *rows])
            ),
        },
    )


# numeric accepts NaN and Infinity, and 'NaN' > 0 is true in PostgreSQL: the
# table's CHECK (rate > 0) alone does not keep them out.
IMPLAUSIBLE_RATES = """
SELECT rate_date, quote, rate::text, source FROM raw.forex_rates
WHERE (%(first)s::date IS NULL OR rate_date >= %(first)s::date)
  AND (%(last)s::date IS NULL OR rate_date <= %(last)s::date)
  AND (rate IN ('NaN', 'Infinity') OR rate <= 0 OR (quote = base AND rate <> 1))
ORDER BY rate_date, quote
"""


@dg.asset_check(asset=forex_rates, description="Every rate is a finite positive number, and 1 GBP = 1 GBP.")
def forex_rates_are_positive(context: dg.AssetCheckExecutionContext, postgres: PostgresResource) -> dg.AssetCheckResult:
    dates = checked_dates(context)
    bad = postgres.fetch_all(IMPLAUSIBLE_RATES, dates.params())
    return dg.AssetCheckResult(
        passed=not bad,
        severity=dg.AssetCheckSeverity.ERROR,
        metadata={
            "checked_dates": dates.describe(),
            "implausible_rates": len(bad),
            "first_implausible": [f"{day} {quote}={rate} ({source})" for day, quote, rate, source in bad[:LISTED]],
        },
    )


# Each rate against the same quote's previous stored date; the lookback reaches
# the day before the first checked date across any weekend or holiday.
LARGE_MOVES = """
SELECT rate_date, quote, previous_date, previous_rate::text, rate::text, source,
       round(greatest(rate / previous_rate, previous_rate / rate), 4)::text AS factor
FROM (
    SELECT rate_date, quote, rate, source,
           lag(rate_date) OVER w AS previous_date, lag(rate) OVER w AS previous_rate
    FROM raw.forex_rates
    WHERE base = %(base)s AND (%(first)s::date IS NULL OR rate_date >= %(first)s::date - 14)
    WINDOW w AS (PARTITION BY quote ORDER BY rate_date)
) pairs
WHERE previous_rate IS NOT NULL
  AND (%(first)s::date IS NULL OR rate_date >= %(first)s::date)
  AND (%(last)s::date IS NULL OR rate_date <= %(last)s::date)
  AND greatest(rate / previous_rate, previous_rate / rate) > %(max_factor)s
ORDER BY rate_date, quote
"""


@dg.asset_check(
    asset=forex_rates,
    description=f"No rate moves by more than a factor of {MAX_DAY_OVER_DAY_FACTOR} from one date to the next.",
)
def forex_day_over_day_moves_are_plausible(
    context: dg.AssetCheckExecutionContext, postgres: PostgresResource
) -> dg.AssetCheckResult:
    """WARN, not ERROR: devaluations (ARS in December 2023, NGN, EGP) are real and their
    rates must still be stored; a flagged move asks a person to confirm it."""
    dates = checked_dates(context)
    moves = postgres.fetch_all(LARGE_MOVES, {**dates.params(), "base": BASE, "max_factor": MAX_DAY_OVER_DAY_FACTOR})
    return dg.AssetCheckResult(
        passed=not moves,
        severity=dg.AssetCheckSeverity.WARN,
        description=(
            f"{len(moves)} day-over-day move(s) beyond ×{MAX_DAY_OVER_DAY_FACTOR}: "
            + ", ".join(sorted({quote for _, quote, *_ in moves}))
            if moves
            else None
        ),
        metadata={
            "checked_dates": dates.describe(),
            "large_moves": len(moves),
            "first_large_moves": [
                f"{day} {quote}: {previous} ({previous_day}) → {rate} ×{factor} ({source})"
                for day, quote, previous_day, previous, rate, source, factor in moves[:LISTED]
            ],
        },
    )


# The longest honest gap: a TARGET holiday run next to a weekend (Good Friday to Easter Monday).
MAX_HONEST_CARRY_FORWARD_DAYS = 4

STALE_RATES = """
SELECT rate_date, effective_date, rate_date - effective_date AS days_old, count(*) AS quotes, min(source)
FROM raw.forex_rates
WHERE base = %(base)s AND rate_date - effective_date > %(max_days)s
  AND (%(first)s::date IS NULL OR rate_date >= %(first)s::date)
  AND (%(last)s::date IS NULL OR rate_date <= %(last)s::date)
GROUP BY 1, 2 ORDER BY 1
"""


@dg.asset_check(
    asset=forex_rates,
    description=f"No date uses rates published more than {MAX_HONEST_CARRY_FORWARD_DAYS} days before it "
    "(the longest weekend-and-holiday gap); older rates were carried past the end of the bundled ECB file.",
)
def forex_rates_are_current(context: dg.AssetCheckExecutionContext, postgres: PostgresResource) -> dg.AssetCheckResult:
    dates = checked_dates(context)
    stale = postgres.fetch_all(STALE_RATES, {**dates.params(), "base": BASE, "max_days": MAX_HONEST_CARRY_FORWARD_DAYS})
    return dg.AssetCheckResult(
        passed=not stale,
        severity=dg.AssetCheckSeverity.WARN,
        metadata={
            "checked_dates": dates.describe(),
            "stale_dates": len(stale),
            "oldest_rates_days": max((days for _, _, days, _, _ in stale), default=0),
            "first_stale": [
                f"{day} uses {effective} ({days} days old, {source})"
                for day, effective, days, _, source in stale[:LISTED]
            ],
        },
        description=None
        if not stale
        else (
            f"{len(stale)} dates use rates more than {MAX_HONEST_CARRY_FORWARD_DAYS} days old: configure an online "
            "forex source (TXSTREAM_FOREX_SOURCE/TXSTREAM_FOREX_URL) and re-run those partitions"
        ),
    )


FOREX_CHECKS = [
    charge_dates_have_forex_rates,
    charge_currencies_have_forex_rates,
    forex_rates_are_positive,
    forex_day_over_day_moves_are_plausible,
    forex_rates_are_current,
]
