"""The TARGET calendar: the days on which the ECB publishes euro reference rates.

ECB reference rates exist for every TARGET business day and for no other day.
Knowing the calendar lets us tell a weekend or holiday (carry the last
published rates forward) from a business day a source has not published yet
(an error: never carry rates over a day that should have its own).
"""

from __future__ import annotations

import functools
from datetime import date, timedelta

from dateutil.easter import easter  # type: ignore[import-untyped]  # python-dateutil ships no stubs

# TARGET's first years had closing days of their own: Good Friday, Easter Monday
# and 1 May became closing days only from 2000, and 31 December was closed in
# 1999 (the millennium) and 2001 (the euro cash changeover). Checked against
# every date of the ECB's history file: no business day is missing from it.
FIRST_YEAR_WITH_EASTER_AND_LABOUR_DAY = 2000
EXTRA_CLOSING_DAYS = frozenset({date(1999, 12, 31), date(2001, 12, 31)})


@functools.cache
def target_holidays(year: int) -> frozenset[date]:
    holidays = {date(year, 1, 1), date(year, 12, 25), date(year, 12, 26)}
    if year >= FIRST_YEAR_WITH_EASTER_AND_LABOUR_DAY:
        easter_sunday = easter(year)
        holidays |= {easter_sunday - timedelta(days=2), easter_sunday + timedelta(days=1), date(year, 5, 1)}
    return frozenset(holidays | {day for day in EXTRA_CLOSING_DAYS if day.year == year})


def is_target_business_day(day: date) -> bool:
    return day.weekday() < 5 and day not in target_holidays(day.year)


def business_days_after(published: date, requested: date) -> list[date]:
    """TARGET business days in (published, requested]: days that should have had their own rates."""
    days = (published + timedelta(days=offset) for offset in range(1, (requested - published).days + 1))
    return [day for day in days if is_target_business_day(day)]
