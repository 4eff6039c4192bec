"""Real Stripe: incremental pulls of every object the source ingests, each behind a cursor.

Charges, refunds, disputes and payouts come from the Events API. Why events and not
`GET /v1/charges` + `/v1/refunds` + …: the list endpoints return each object as it is
*now*, filtered on when it was *created*, so a charge refunded or disputed after the
last pull is never seen again, a dispute's outcome (won/lost) or a payout's arrival
(paid/failed) never arrives. `GET /v1/events` returns every version (charge.succeeded,
charge.refunded, charge.dispute.closed, payout.paid, …) with the time Stripe observed
it — exactly one Kafka message each — through one cursor. Its limit: Stripe keeps
events for 30 days, so older history (a first pull, an outage of over a month) comes
from the list endpoints first (backfill.py).

Balance transactions have no events. Stripe keeps them forever and changes nothing
of them but `status` (pending → available), so they come from `GET
/v1/balance_transactions` with a `created` cursor of their own, from the backfill's
start date on. Which payout paid one out, the object does not say: once a payout's
balance transactions can be queried (its `reconciliation_status` is `completed`) they
are listed again with `?payout=po_…` and published naming it
(event_contract.HEADER_PAYOUT), now available: the version the warehouse keeps.

How a cursor moves: time is cut into half-open windows [gte, lt) of whole seconds
that end at least `settle_seconds` in the past (list results settle a moment after a
write). A window is paged through completely (`created[gte]`, `created[lt]`,
`starting_after`), published oldest first, and only when Kafka has acknowledged all
of it does the cursor move to its end. A crash replays at most one window; a clean
restart publishes nothing twice. Windows widen while they are quiet (a 30-day
backfill of a quiet account takes a dozen calls, not 720) and narrow when busy,
which bounds the memory one window holds.
"""

from __future__ import annotations

import heapq
import itertools
import logging
import random
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from functools import partial
from typing import Any

import orjson
import stripe

from txstream_dagster.defs.stripe_source.cursors import CursorStore
from txstream_dagster.defs.stripe_source.object_versions import ObjectVersion
from txstream_dagster.defs.stripe_source.publisher import Publisher, PublishReport
from txstream_spark.event_contract import API_VERSION, OBJECT_TYPES

log = logging.getLogger(__name__)

# The list endpoint of every object type the source ingests.
LIST_PATHS = {
    "charge": "/v1/charges",
    "refund": "/v1/refunds",
    "dispute": "/v1/disputes",
    "payout": "/v1/payouts",
    "balance_transaction": "/v1/balance_transactions",
}
# Every event whose data.object is a charge, refund, dispute or payout, one tuple per request: the Events
# API takes up to 20 types a request. All the events of one object type are asked for in one request, so
# the versions of an object keep Stripe's order (requests are merged on `created` only).
EVENT_TYPES_PER_REQUEST = (
    (
        "charge.captured",
        "charge.expired",
        "charge.failed",
        "charge.pending",
        "charge.refunded",
        "charge.succeeded",
        "charge.updated",
        "charge.dispute.closed",
        "charge.dispute.created",
        "charge.dispute.funds_reinstated",
        "charge.dispute.funds_withdrawn",
        "charge.dispute.updated",
        "charge.refund.updated",
        "refund.created",
        "refund.updated",
        "refund.failed",
    ),
    (
        "payout.canceled",
        "payout.created",
        "payout.failed",
        "payout.paid",
        "payout.reconciliation_completed",
        "payout.updated",
    ),
)
EVENT_TYPES = tuple(event_type for request in EVENT_TYPES_PER_REQUEST for event_type in request)
EVENT_RETENTION_DAYS = 30
PAGE_SIZE = 100
MAX_WINDOW_SECONDS = 7 * 86_400
# Years of history (the backfill, balance transactions) are crossed in few calls: a quiet window doubles up to this.
MAX_LIST_WINDOW_SECONDS = 366 * 86_400
BUSY_WINDOW_EVENTS = 20_000
RATE_LIMIT_RETRIES = 8
RATE_LIMIT_BACKOFF_FIRST_S = 1.0
RATE_LIMIT_BACKOFF_MAX_S = 60.0


class StripeSourceError(RuntimeError):
    """Stripe refused the pull for a reason retrying will not fix (key, permission, request)."""


class StripeUnavailable(StripeSourceError):
    """Stripe could not be reached or kept failing after every retry; the next pull may succeed."""


class CardDeclined(StripeSourceError):
    """Creating a charge: the card was declined (Stripe keeps the failed charge)."""


def _header(headers: Mapping[str, str] | None, name: str) -> str | None:
    for key, value in (headers or {}).items():
        if key.lower() == name:
            return value
    return None


def retry_after_seconds(headers: Mapping[str, str] | None) -> float | None:
    """Seconds from a `Retry-After: <seconds>` header, if Stripe sent one."""
    value = _header(headers, "retry-after")
    try:
        return max(float(value), 0.0) if value is not None else None
    except ValueError:
        return None  # an HTTP date: fall back to our own back-off


class StripeApi:
    """Calls to one Stripe account, with Stripe's failures turned into errors that say what to do.

    Connection errors and 5xx are retried by the stripe library (`max_network_retries`,
    exponential back-off). It retries a 429 only when Stripe sends `Stripe-Should-Retry:
    true` and ignores `Retry-After`, so rate limits are retried here: `Retry-After` when
    present, else exponential back-off with jitter.
    """

    def __init__(self, client: stripe.StripeClient, api_key: str | None, api_base: str | None):
        self.client = client
        self._api_key = api_key
        self.api_base = api_base or stripe.DEFAULT_API_BASE
        self.rate_limited = 0  # 429s absorbed, for the run's metadata

    def request(self, method: str, path: str, **params: Any) -> dict[str, Any]:
        for attempt in itertools.count(1):
            try:
                return orjson.loads(self.client.raw_request(method, path, **params).body)
            except stripe.RateLimitError as exc:
                self.rate_limited += 1
                if attempt > RATE_LIMIT_RETRIES or _header(exc.headers, "stripe-should-retry") == "false":
                    raise StripeUnavailable(
                        f"Stripe kept rate-limiting {method.upper()} {path} (HTTP 429) after {attempt} attempts: "
                        "another integration may be using this account's request budget; try again later."
                    ) from None
                delay = retry_after_seconds(exc.headers)
                if delay is None:
                    delay = min(RATE_LIMIT_BACKOFF_FIRST_S * 2 ** (attempt - 1), RATE_LIMIT_BACKOFF_MAX_S)
                    delay *= random.uniform(0.5, 1.0)
                log.warning("Stripe rate limit on %s %s; retrying in %.1f s", method.upper(), path, delay)
                time.sleep(min(delay, RATE_LIMIT_BACKOFF_MAX_S))
            except stripe.StripeError as exc:
                raise self._explain(exc, method, path) from None
        raise AssertionError("unreachable: itertools.count() never ends")

    def _explain(self, exc: stripe.StripeError, method: str, path: str) -> StripeSourceError:
        detail = self._scrub(exc.user_message or str(exc) or type(exc).__name__)
        call = f"{method.upper()} {path}"
        if isinstance(exc, stripe.AuthenticationError):
            return StripeSourceError(
                f"Stripe rejected STRIPE_API_KEY (HTTP 401 on {call}: {detail}). "
                "Set STRIPE_API_KEY to a valid secret key (sk_test_… / sk_live_…) of the account to ingest."
            )
        if isinstance(exc, stripe.PermissionError):
            return StripeSourceError(
                f"STRIPE_API_KEY may not call {call} (HTTP 403: {detail}). A restricted key (rk_…) needs "
                "read access to Events, Charges, Refunds, Disputes, Payouts and Balance (balance transactions); "
                "write access to Charges for --create-test-charges."
            )
        if isinstance(exc, stripe.CardError):
            return CardDeclined(f"Stripe declined {call}: {detail}")
        if isinstance(exc, stripe.InvalidRequestError):
            param = f" (parameter {exc.param!r})" if getattr(exc, "param", None) else ""
            return StripeSourceError(
                f"Stripe rejected {call} as invalid{param}: {detail}. If TXSTREAM_STRIPE_API_BASE is set, "
                "check that it points at the Stripe API."
            )
        if isinstance(exc, stripe.APIConnectionError):
            return StripeUnavailable(
                f"Cannot reach Stripe at {self.api_base} for {call} after retries: {detail}. "
                "Check the network (or TXSTREAM_STRIPE_API_BASE); the cursor did not move."
            )
        return StripeUnavailable(
            f"Stripe failed {call} (HTTP {exc.http_status}) after retries: {detail}. "
            "The cursor did not move; the next pull tries again."
        )

    def _scrub(self, text: str) -> str:
        return text.replace(self._api_key, "***") if self._api_key else text

    def pages(self, path: str, **params: Any) -> Iterator[list[dict[str, Any]]]:
        """Every page of the list endpoint `path` with `params`, as Stripe lists them: newest first."""
        params = {"limit": PAGE_SIZE, **params}
        while True:
            page = self.request("get", path, **params)
            yield page["data"]
            if not page["has_more"] or not page["data"]:
                return
            params["starting_after"] = page["data"][-1]["id"]

    def list_between(self, path: str, gte: int, lt: int, **params: Any) -> list[dict[str, Any]]:
        """Every item of the list endpoint `path` created in [gte, lt), oldest first, following every page."""
        items = [item for page in self.pages(path, created={"gte": gte, "lt": lt}, **params) for item in page]
        items.reverse()  # Stripe lists newest first
        return items

    def events_between(self, gte: int, lt: int) -> list[dict[str, Any]]:
        """Every event of EVENT_TYPES created in [gte, lt), oldest first (Stripe's order within a second)."""
        per_request = [self.list_between("/v1/events", gte, lt, types=list(types)) for types in EVENT_TYPES_PER_REQUEST]
        return list(heapq.merge(*per_request, key=lambda event: event["created"]))


def api_version_of(event: dict[str, Any]) -> str | None:
    """The Event's api_version when it is one the contract carries (Stripe leaves it null on some events)."""
    version = event.get("api_version")
    return version if isinstance(version, str) and API_VERSION.fullmatch(version) else None


def client_api_version() -> str | None:
    """The API version the stripe library asks for, which shapes every object it lists."""
    version = getattr(stripe, "api_version", None)
    return version if isinstance(version, str) and API_VERSION.fullmatch(version) else None


def versions_from_events(events: list[dict[str, Any]]) -> list[ObjectVersion]:
    """The object in each event (oldest first), with its observation time.

    Stripe's `created` has whole seconds: versions observed within one second keep
    Stripe's order and are spaced 1 ms apart, so a later version always has a later
    event time.
    """
    versions = []
    previous_second, within_second = None, 0
    for event in events:
        obj = event["data"]["object"]
        if obj.get("object") not in OBJECT_TYPES:
            continue
        second = event["created"]
        within_second = within_second + 1 if second == previous_second else 0
        previous_second = second
        versions.append(
            ObjectVersion(obj["object"], obj["id"], second * 1000 + min(within_second, 999), obj, api_version_of(event))
        )
    return versions


def versions_from_list(
    object_type: str, objects: Iterable[dict[str, Any]], observed_ms: int, payout_id: str | None = None
) -> list[ObjectVersion]:
    """Listed objects as versions observed at `observed_ms` (listed under `payout_id`, if given). Pure."""
    api_version = client_api_version()
    return [
        ObjectVersion(object_type, obj["id"], observed_ms, obj, api_version, payout_id)
        for obj in objects
        if obj.get("object") == object_type
    ]


def cursor_stream(topic: str) -> str:
    return f"events:{topic}"


def balance_transactions_stream(topic: str) -> str:
    return f"balance_transactions:{topic}"


@dataclass
class SyncReport:
    windows: int = 0
    listed: int = 0  # events, or balance transactions, fetched from Stripe
    published: PublishReport = field(default_factory=PublishReport)
    cursor_to: int | None = None


def walk_windows(
    gte: int,
    horizon: int,
    span: int,
    fetch: Callable[[int, int], list[dict[str, Any]]],
    on_window: Callable[[int, int, list[dict[str, Any]]], None],
    *,
    max_span: int = MAX_WINDOW_SECONDS,
    stop: threading.Event | None = None,
) -> None:
    """Fetch [gte, horizon) in half-open windows, oldest first, handing each to `on_window`.

    `span` is the first window's; a quiet window (under a page) doubles the next, up to `max_span`,
    and a busy one (over BUSY_WINDOW_EVENTS) halves it, which bounds the memory one window holds.
    `stop` ends the walk between windows: `on_window` has finished with every window before.
    """
    while gte < horizon and not (stop and stop.is_set()):
        lt = min(gte + span, horizon)
        items = fetch(gte, lt)
        on_window(gte, lt, items)
        gte = lt
        if len(items) < PAGE_SIZE:
            span = min(span * 2, max_span)
        elif len(items) > BUSY_WINDOW_EVENTS:
            span = max(span // 2, 1)


def follow_cursor(
    cursors: CursorStore,
    stream: str,
    fetch: Callable[[int, int], list[dict[str, Any]]],
    publish: Callable[[list[dict[str, Any]]], PublishReport],
    *,
    start_s: int,
    horizon: int,
    window_seconds: int,
    max_span: int = MAX_WINDOW_SECONDS,
    on_window: Callable[[int], None] | None = None,
    stop: threading.Event | None = None,
) -> SyncReport:
    """Walk the cursor `stream` (from `start_s` the first time) up to `horizon`, window by window.

    `publish(items)` returns once Kafka acknowledged everything it sent; only then does the cursor move to
    the window's end, and `on_window(end)` report it. `stop` ends the walk between windows.
    """
    position = cursors.load(stream)
    gte = position["created_gte"] if position else start_s
    report = SyncReport(cursor_to=gte)

    def publish_window(gte: int, lt: int, items: list[dict[str, Any]]) -> None:
        report.published.add(publish(items))
        cursors.save(stream, {"created_gte": lt})
        report.windows += 1
        report.listed += len(items)
        report.cursor_to = lt
        if on_window:
            on_window(lt)

    walk_windows(gte, horizon, window_seconds, fetch, publish_window, max_span=max_span, stop=stop)
    return report


def payouts_to_list(versions: Iterable[ObjectVersion]) -> list[str]:
    """The payouts among `versions` whose balance transactions Stripe lists, each once, in order. Pure.

    Stripe answers `GET /v1/balance_transactions?payout=…` for automatic payouts once it has settled what
    they paid out, which it says with `reconciliation_status: completed` (the event
    payout.reconciliation_completed); a manual payout's is `not_applicable`.
    """
    return list(
        dict.fromkeys(
            v.object_id
            for v in versions
            if v.object_type == "payout" and v.payload.get("reconciliation_status") == "completed"
        )
    )


def paid_out_versions(api: StripeApi, payout_id: str) -> Iterator[ObjectVersion]:
    """The balance transactions Stripe lists under `payout_id`, page by page, each stamped when listed."""
    for page in api.pages(LIST_PATHS["balance_transaction"], payout=payout_id):
        yield from versions_from_list("balance_transaction", page, int(time.time() * 1000), payout_id)


def publish_paid_out(
    api: StripeApi,
    publisher: Publisher,
    versions: Iterable[ObjectVersion],
    progress: Callable[[int], None] | None = None,
) -> PublishReport:
    """For each payout in `versions` whose balance transactions Stripe lists, publish them naming it.

    The stream keeps the newest version of an object (and a payout it already knows when a newer version
    names none), so a version naming its payout must not be older than the other versions of its balance
    transaction: they are stamped when listed here, after the balance-transaction cursor listed them
    (pull_stripe runs it first, up to the same horizon; Stripe pays out only what was created before).
    Pages are published as they come: a payout of 100,000 transactions is never held in memory.
    """
    report = PublishReport()
    for payout_id in payouts_to_list(versions):
        report.add(publisher.publish(paid_out_versions(api, payout_id), progress))
    return report


def sync_events(
    api: StripeApi,
    publisher: Publisher,
    cursors: CursorStore,
    *,
    now_s: int,
    start_s: int,
    window_seconds: int,
    settle_seconds: int,
    progress: Callable[[int], None] | None = None,
    stop: threading.Event | None = None,
) -> SyncReport:
    """Publish every event from the cursor (or `start_s` on a first pull) up to `now_s - settle_seconds`,
    and the balance transactions of every payout reconciled meanwhile (publish_paid_out).

    The cursor moves window by window, each time after Kafka acknowledged the whole window.
    `window_seconds` is the first window's span; later ones adapt to how busy the account is.
    `stop` ends the pull between windows (the cursor stays consistent).
    """

    def publish(events: list[dict[str, Any]]) -> PublishReport:
        versions = versions_from_events(events)
        report = publisher.publish(versions, progress)
        report.add(publish_paid_out(api, publisher, versions, progress))
        return report

    report = follow_cursor(
        cursors,
        cursor_stream(publisher.topic),
        api.events_between,
        publish,
        start_s=start_s,
        horizon=now_s - settle_seconds,
        window_seconds=window_seconds,
        stop=stop,
    )
    log.info(
        "Published %d Stripe events in %d windows; the next pull starts at %s",
        report.listed,
        report.windows,
        report.cursor_to,
    )
    return report


def sync_balance_transactions(
    api: StripeApi,
    publisher: Publisher,
    cursors: CursorStore,
    *,
    now_s: int,
    start_s: int,
    window_seconds: int,
    settle_seconds: int,
    progress: Callable[[int], None] | None = None,
    on_window: Callable[[int], None] | None = None,
    stop: threading.Event | None = None,
) -> SyncReport:
    """Publish every balance transaction created from the cursor up to `now_s - settle_seconds`, each as a
    version observed when it was listed.

    A first pull starts at `start_s`, the backfill's start: Stripe keeps balance transactions forever, so
    unlike events they need no backfill of their own. Quiet years are crossed in few calls.
    """

    def publish(balance_transactions: list[dict[str, Any]]) -> PublishReport:
        observed_ms = int(time.time() * 1000)
        return publisher.publish(versions_from_list("balance_transaction", balance_transactions, observed_ms), progress)

    report = follow_cursor(
        cursors,
        balance_transactions_stream(publisher.topic),
        partial(api.list_between, LIST_PATHS["balance_transaction"]),
        publish,
        start_s=start_s,
        horizon=now_s - settle_seconds,
        window_seconds=window_seconds,
        max_span=MAX_LIST_WINDOW_SECONDS,
        on_window=on_window,
        stop=stop,
    )
    log.info(
        "Published %d Stripe balance transactions in %d windows; the next pull starts at %s",
        report.listed,
        report.windows,
        report.cursor_to,
    )
    return report
