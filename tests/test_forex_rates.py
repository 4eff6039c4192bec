"""Pure forex logic: the TARGET calendar, cross rates, validation, carrying rates forward, and
which stored rows a new fetch may replace. No services."""

from __future__ import annotations

from datetime import date, timedelta
from decimal import Decimal

import pytest

from forex_helpers import ecb_history
from txstream_dagster.defs.forex.rates import (
    InvalidRates,
    MissingPublication,
    PublishedRates,
    StoredRate,
    check_carry_forward,
    cross_rates,
    parse_quotes,
    plan_write,
    require_coverage,
)
from txstream_dagster.defs.forex.target_calendar import business_days_after, is_target_business_day

D = Decimal


# --- TARGET calendar ---------------------------------------------------------------------


def test_target_closes_on_weekends_and_its_six_holidays():
    closed_2024 = [
        date(2024, 1, 1),
        date(2024, 3, 29),  # Good Friday
        date(2024, 4, 1),  # Easter Monday
        date(2024, 5, 1),
        date(2024, 12, 25),
        date(2024, 12, 26),
        date(2024, 1, 6),  # Saturday
        date(2024, 1, 7),  # Sunday
    ]
    assert not any(is_target_business_day(day) for day in closed_2024)
    assert is_target_business_day(date(2024, 3, 28))
    assert is_target_business_day(date(2024, 12, 24))


def test_ecb_published_on_exactly_the_target_business_days_since_1999():
    # Guards the calendar's early-years exceptions (Easter 1999 open, 31 Dec 1999/2001 closed).
    published = set(ecb_history())
    first, last = min(published), max(published)
    every_day = {first + timedelta(days=n) for n in range((last - first).days + 1)}
    assert {day for day in every_day if is_target_business_day(day)} == published


def test_business_days_after_a_friday_skip_the_weekend():
    assert business_days_after(date(2024, 1, 5), date(2024, 1, 7)) == []
    assert business_days_after(date(2024, 1, 5), date(2024, 1, 9)) == [date(2024, 1, 8), date(2024, 1, 9)]


# --- carrying rates forward ----------------------------------------------------------------


def test_friday_rates_stand_for_the_weekend():
    check_carry_forward(date(2024, 1, 6), date(2024, 1, 5))
    check_carry_forward(date(2024, 1, 7), date(2024, 1, 5))


def test_easter_thursday_rates_stand_until_easter_monday():
    check_carry_forward(date(2024, 4, 1), date(2024, 3, 28))


def test_rates_are_never_carried_over_a_business_day():
    with pytest.raises(MissingPublication, match="2024-01-08 is a TARGET business day"):
        check_carry_forward(date(2024, 1, 8), date(2024, 1, 5))


def test_rates_published_after_the_requested_date_are_rejected():
    with pytest.raises(InvalidRates, match="later date"):
        check_carry_forward(date(2024, 1, 5), date(2024, 1, 8))


# --- cross rates -------------------------------------------------------------------------


def test_gbp_cross_rate_is_the_quote_rate_over_the_gbp_rate():
    rates = cross_rates({"eur": D(1), "gbp": D("0.86"), "usd": D("1.0946"), "jpy": D("158.89")})
    # 1.0946 / 0.86 and 158.89 / 0.86, kept to 12 significant figures
    assert rates["usd"] == D("1.27279069767")
    assert rates["jpy"] == D("184.755813953")


def test_eur_cross_rate_is_the_inverse_of_eur_gbp_and_gbp_is_one():
    rates = cross_rates({"eur": D(1), "gbp": D("0.8")})
    assert rates == {"eur": D("1.25"), "gbp": D(1)}


def test_cross_rates_need_a_gbp_rate():
    with pytest.raises(InvalidRates, match="no EUR/GBP rate"):
        cross_rates({"eur": D(1), "usd": D("1.09")})


# --- validation ----------------------------------------------------------------------------


def test_quotes_are_lower_case_iso_currencies_and_skip_crypto_and_metals():
    rates = parse_quotes({"USD": D("1.27"), "kwd": D("0.39"), "btc": D("0.00002"), "1inch": 3, "xau": D("0.0006")})
    assert rates == {"usd": D("1.27"), "kwd": D("0.39"), "gbp": D(1)}


@pytest.mark.parametrize(
    ("value", "problem"),
    [
        (D(0), "not a positive number"),
        (D("-1.2"), "not a positive number"),
        ("1.27", "not a number"),
        (None, "not a number"),
        (True, "not a number"),
        (D("NaN"), "not a positive number"),
    ],
)
def test_a_currency_without_a_positive_number_rejects_the_whole_response(value, problem):
    with pytest.raises(InvalidRates, match=f"rate for usd is .*{problem}"):
        parse_quotes({"eur": D("1.16"), "usd": value})


def test_rates_that_are_not_an_object_are_rejected():
    with pytest.raises(InvalidRates, match="list, not an object"):
        parse_quotes([["usd", 1.27]])


def test_a_response_whose_base_is_not_gbp_is_rejected():
    with pytest.raises(InvalidRates, match="not 1: the base is not gbp"):
        parse_quotes({"gbp": D("0.86"), "usd": D("1.09")})


def test_a_response_without_usd_or_eur_is_partial():
    with pytest.raises(InvalidRates, match="no rate for usd: the response is partial"):
        require_coverage({"eur": D("1.16"), "gbp": D(1), "jpy": D(188)}, minimum=1)


def test_a_response_with_too_few_currencies_is_partial():
    with pytest.raises(InvalidRates, match="only 2 currencies"):
        require_coverage({"eur": D("1.16"), "usd": D("1.27"), "gbp": D(1)}, minimum=20)


# --- replacing stored rows -------------------------------------------------------------------

FRIDAY = date(2024, 1, 5)


def published(source: str, rates: dict[str, str], effective: date = FRIDAY) -> PublishedRates:
    return PublishedRates(source, effective, {quote: D(rate) for quote, rate in rates.items()})


def test_an_empty_partition_takes_every_rate():
    plan = plan_write({}, published("ecb_bundled", {"usd": "1.27", "gbp": "1"}))
    assert plan.write == {"usd": D("1.27"), "gbp": D(1)}


def test_a_lower_ranked_source_never_replaces_a_better_one():
    stored = {"usd": StoredRate(D("1.2711"), "currency_api", FRIDAY)}
    plan = plan_write(stored, published("ecb_bundled", {"usd": "1.2702", "jpy": "183.9"}))
    assert plan.kept == stored
    assert plan.write == {"jpy": D("183.9")}  # a currency the partition lacked is still added


def test_a_better_ranked_source_replaces_a_lower_one():
    stored = {"usd": StoredRate(D("1.2702"), "ecb_bundled", FRIDAY)}
    assert plan_write(stored, published("currency_api", {"usd": "1.2711"})).write == {"usd": D("1.2711")}


def test_an_older_publication_from_the_same_source_never_rolls_a_rate_back():
    stored = {"usd": StoredRate(D("1.2745"), "frankfurter", date(2024, 1, 8))}
    plan = plan_write(stored, published("frankfurter", {"usd": "1.2702"}, effective=FRIDAY))
    assert plan.kept == stored and not plan.write


def test_the_same_rates_again_are_unchanged():
    stored = {"usd": StoredRate(D("1.2702"), "ecb_bundled", FRIDAY)}
    plan = plan_write(stored, published("ecb_bundled", {"usd": "1.2702"}))
    assert plan.unchanged == ["usd"] and not plan.write and not plan.kept


def test_a_fetch_missing_a_stored_currency_leaves_that_row_alone():
    stored = {
        "usd": StoredRate(D("1.27"), "currency_api", FRIDAY),
        "kwd": StoredRate(D("0.39"), "currency_api", FRIDAY),
    }
    plan = plan_write(stored, published("currency_api", {"usd": "1.28"}))
    assert plan.write == {"usd": D("1.28")} and "kwd" not in plan.write and "kwd" not in plan.kept


def test_a_manual_correction_is_never_replaced():
    stored = {"usd": StoredRate(D("1.27"), "manual", FRIDAY)}
    assert plan_write(stored, published("currency_api", {"usd": "1.28"})).kept == stored
