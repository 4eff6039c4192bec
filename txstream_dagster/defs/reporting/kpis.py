"""Daily KPIs from marts.agg_daily_revenue: GBP revenue and success rate per UTC day.

Revenue is the captured amount of successful charges in GBP, as on the Grafana
payments dashboard. Charges without a GBP rate have no GBP amount: they are
counted (`charges_without_gbp_rate`) and never converted at 1.0.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, timedelta
from decimal import Decimal

import psycopg


@dataclass(frozen=True)
class DailyKpi:
    day: date
    charges: int
    successful_charges: int
    revenue_gbp: Decimal
    charges_without_gbp_rate: int

    @property
    def success_rate(self) -> float | None:
        return self.successful_charges / self.charges if self.charges else None


@dataclass(frozen=True)
class KpiWindow:
    """The days a report covers; the last one may be today, still filling up."""

    days: tuple[DailyKpi, ...]
    last_day_complete: bool

    @property
    def first_day(self) -> date:
        return self.days[0].day

    @property
    def last_day(self) -> DailyKpi:
        return self.days[-1]

    @property
    def charges(self) -> int:
        return sum(day.charges for day in self.days)

    @property
    def successful_charges(self) -> int:
        return sum(day.successful_charges for day in self.days)

    @property
    def revenue_gbp(self) -> Decimal:
        return sum((day.revenue_gbp for day in self.days), Decimal(0))

    @property
    def charges_without_gbp_rate(self) -> int:
        return sum(day.charges_without_gbp_rate for day in self.days)

    @property
    def success_rate(self) -> float | None:
        return self.successful_charges / self.charges if self.charges else None


class NoChargesYet(RuntimeError):
    pass


def window_for(last_day: date, days: int) -> tuple[date, date]:
    return last_day - timedelta(days=days - 1), last_day


def with_every_day(kpis: Sequence[DailyKpi], first: date, last: date) -> tuple[DailyKpi, ...]:
    """One entry per day of [first, last]: a day without charges is a day of zeros, not a gap. Pure."""
    by_day = {kpi.day: kpi for kpi in kpis}
    span = (last - first).days + 1
    return tuple(
        by_day.get(day, DailyKpi(day, 0, 0, Decimal(0), 0)) for day in (first + timedelta(days=n) for n in range(span))
    )


def newest_revenue_day(conn: psycopg.Connection, today: date) -> date:
    """The newest UTC day with charges, up to today (a charge dated in the future does not move the window)."""
    [(newest,)] = conn.execute(
        "SELECT max(revenue_date) FROM marts.agg_daily_revenue WHERE revenue_date <= %s", [today]
    ).fetchall()
    if newest is None:
        raise NoChargesYet(
            "marts.agg_daily_revenue holds no charges up to today: land charges and build the marts first "
            "(`txstream demo`, or the stream and `txstream dbt build`)"
        )
    return newest


def daily_kpis(conn: psycopg.Connection, first: date, last: date) -> list[DailyKpi]:
    rows = conn.execute(
        """SELECT revenue_date,
                  sum(charge_count),
                  sum(successful_charge_count),
                  coalesce(sum(gross_amount_gbp), 0),
                  sum(fx_rate_missing_count)
           FROM marts.agg_daily_revenue
           WHERE revenue_date BETWEEN %s AND %s
           GROUP BY revenue_date
           ORDER BY revenue_date""",
        [first, last],
    ).fetchall()
    return [DailyKpi(day, int(charges), int(ok), revenue, int(missing)) for day, charges, ok, revenue, missing in rows]


def kpi_window(conn: psycopg.Connection, days: int, today: date) -> KpiWindow:
    """The `days` UTC days ending on the newest day with charges (`conn`: the read-only role's, see assets.py)."""
    first, last = window_for(newest_revenue_day(conn, today), days)
    return KpiWindow(with_every_day(daily_kpis(conn, first, last), first, last), last_day_complete=last < today)
