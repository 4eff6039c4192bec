"""What feeds the topic — synthetic objects or objects pulled from Stripe — and a summary of each run.

Shared by the `stripe_events_topic` asset (one batch) and `txstream produce`
(continuous), so both publish exactly the same way.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import closing
from dataclasses import dataclass, field
from functools import partial
from itertools import islice
from typing import Any

from txstream_dagster.defs.stripe_source.backfill import backfill_objects, backfill_stream, needs_backfill
from txstream_dagster.defs.stripe_source.cursors import CursorStore
from txstream_dagster.defs.stripe_source.object_versions import ObjectVersion
from txstream_dagster.defs.stripe_source.publisher import Publisher, PublishReport
from txstream_dagster.defs.stripe_source.resources import StripeResource
from txstream_dagster.defs.stripe_source.stripe_api import (
    StripeApi,
    balance_transactions_stream,
    cursor_stream,
    sync_balance_transactions,
    sync_events,
)
from txstream_dagster.defs.stripe_source.synthetic_charges import DAY_MS, SyntheticStripe
from txstream_dagster.defs.stripe_source.synthetic_ledger import SyntheticLedger
from txstream_dagster.resources import KafkaResource, PostgresResource

# Without a target rate, stream timestamps still advance as if charges came at this rate.
UNTHROTTLED_STREAM_RATE = 5_000.0
# Fast streams are paced, and checked for their end, every this many messages rather than each one.
METER_EVERY = 64


@dataclass
class FeedSummary:
    source: str  # synthetic | stripe
    topic: str
    messages: int = 0
    by_object_type: dict[str, int] = field(default_factory=dict)
    seconds: float = 0.0
    resent: int = 0  # deliveries Kafka failed once and that were sent again
    end_offsets: dict[int, int] = field(default_factory=dict)
    seed: int | None = None  # synthetic: reproduces the run
    cursor_created_gte: int | None = None  # stripe: where the next pull of events starts (epoch seconds)
    balance_transactions_cursor: int | None = None  # stripe: where the next listing of balance transactions starts
    rate_limited: int = 0  # stripe: 429s absorbed by back-off
    # stripe: objects listed as history, per type (by the backfill; balance transactions while a day behind)
    backfilled: dict[str, int] = field(default_factory=dict)
    backfill_complete: bool | None = None  # stripe: None = no backfill was needed

    @property
    def per_second(self) -> float:
        return self.messages / self.seconds if self.seconds else 0.0

    def add(self, report: PublishReport) -> None:
        self.messages += report.messages
        self.resent += report.resent
        for object_type, count in report.by_object_type.items():
            self.by_object_type[object_type] = self.by_object_type.get(object_type, 0) + count


def metered(
    versions: Iterable[ObjectVersion],
    *,
    rate: float | None = None,
    deadline: float | None = None,
    stop: threading.Event | None = None,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
) -> Iterator[ObjectVersion]:
    """`versions` at no more than `rate` per second, until `deadline` (a `clock()` value) or `stop` is set."""
    started = clock()
    # Slow rates are paced message by message, fast ones in bursts of up to METER_EVERY (≤ 50 bursts/s).
    every = max(1, min(METER_EVERY, int(rate / 50))) if rate else METER_EVERY
    for sent, version in enumerate(versions):
        if sent % every == 0:
            if rate:
                now = clock()
                ahead = min(started + sent / rate, deadline if deadline is not None else float("inf")) - now
                if ahead > 0:
                    sleep(ahead)
            if (deadline is not None and clock() >= deadline) or (stop is not None and stop.is_set()):
                return
        yield version


def publish_synthetic(
    kafka: KafkaResource,
    *,
    seed: int,
    count: int | None = None,
    rate: float | None = None,
    history_days: int = 0,
    deadline: float | None = None,
    stop: threading.Event | None = None,
    progress: Callable[[int], None] | None = None,
    now_ms: int | None = None,
    ledger: SyntheticLedger | None = None,
) -> FeedSummary:
    """Synthetic objects into the topic, each chunk recorded in `ledger` (what Stripe holds) before it is sent.

    history_days > 0: `count` charges spread over the last `history_days` days, then
    their refunds and disputes. Otherwise a stream from now: `count` messages, or
    until `deadline`/`stop`. `rate` (messages/s) paces publishing; None = flat out.
    """
    now_ms = now_ms if now_ms is not None else int(time.time() * 1000)
    generator = SyntheticStripe(seed)
    if history_days > 0:
        if not count:
            raise ValueError("a synthetic history needs a number of charges (--count / messages)")
        versions: Iterable[ObjectVersion] = generator.history(now_ms - history_days * DAY_MS, now_ms, count)
    else:
        if not count and deadline is None and stop is None:
            raise ValueError("a synthetic stream needs an end: a message count, a duration or a stop signal")
        versions = generator.stream(now_ms, rate or UNTHROTTLED_STREAM_RATE)
        if count:
            versions = islice(versions, count)
    kafka.ensure_topic()
    summary = FeedSummary("synthetic", kafka.topic, seed=seed)
    started = time.perf_counter()
    with closing(kafka.producer()) as producer:
        publisher = Publisher(producer, kafka.topic, "synthetic", before_send=ledger.record if ledger else None)
        report = publisher.publish(metered(versions, rate=rate, deadline=deadline, stop=stop), progress)
    summary.seconds = time.perf_counter() - started
    summary.add(report)
    summary.end_offsets = kafka.end_offsets()
    return summary


def format_epoch(seconds: int) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(seconds))


def stripe_cursors(postgres: PostgresResource, stripe: StripeResource) -> CursorStore:
    """The account's cursors: its test and live data are apart, and so are their cursors."""
    return CursorStore(postgres, source=f"stripe-{stripe.mode}")


def stripe_api(stripe: StripeResource) -> StripeApi:
    return StripeApi(stripe.client(), stripe.api_key, stripe.api_base)


def listing_history(position: dict[str, Any] | None, now_s: int) -> bool:
    """Whether a listing from the cursor `position` is a backfill: a first one (years, from the start date), or
    one a day or more behind (after an outage, or a backfill requested from a date). Pure."""
    return position is None or position["created_gte"] < now_s - DAY_MS // 1000


def pull_stripe(
    kafka: KafkaResource,
    stripe: StripeResource,
    postgres: PostgresResource,
    *,
    progress: Callable[[int], None] | None = None,
    on_backfill_window: Callable[[str, int], None] | None = None,
    summary: FeedSummary | None = None,
    stop: threading.Event | None = None,
) -> FeedSummary:
    """Everything Stripe recorded since the cursors, into the topic; a cursor moves after Kafka acknowledged.

    Balance transactions are listed first, up to the same horizon as the events: a payout's are then
    published without it before the events (or the backfill) list them again naming it, so the version
    naming the payout is the newest (stripe_api.publish_paid_out). A first pull, or one whose Events
    cursor is older than Stripe keeps events, lists the history from the list endpoints (backfill.py),
    then hands over to the Events cursor. Pass the `summary` of earlier pulls to accumulate a continuous run.
    """
    api = stripe_api(stripe)
    kafka.ensure_topic()
    summary = summary or FeedSummary("stripe", kafka.topic)
    cursors = stripe_cursors(postgres, stripe)
    now_s = int(time.time())
    started = time.perf_counter()
    with closing(kafka.producer()) as producer:
        publisher = Publisher(producer, kafka.topic, "stripe")
        history = listing_history(cursors.load(balance_transactions_stream(kafka.topic)), now_s)
        balance_transactions = sync_balance_transactions(
            api,
            publisher,
            cursors,
            now_s=now_s,
            start_s=stripe.backfill_from_s,
            window_seconds=stripe.window_seconds,
            settle_seconds=stripe.settle_seconds,
            progress=progress,
            on_window=partial(on_backfill_window, "balance_transaction") if history and on_backfill_window else None,
            stop=stop,
        )
        summary.add(balance_transactions.published)
        summary.balance_transactions_cursor = balance_transactions.cursor_to
        if history:
            summary.backfilled["balance_transaction"] = (
                summary.backfilled.get("balance_transaction", 0) + balance_transactions.listed
            )
        backfilling = needs_backfill(
            cursors.load(cursor_stream(kafka.topic)), cursors.load(backfill_stream(kafka.topic)), now_s
        )
        if backfilling:
            backfill = backfill_objects(
                api,
                publisher,
                cursors,
                now_s=now_s,
                start_s=stripe.backfill_from_s,
                window_seconds=stripe.window_seconds,
                settle_seconds=stripe.settle_seconds,
                progress=progress,
                on_window=on_backfill_window,
                stop=stop,
            )
            summary.add(backfill.published)
            for object_type, listed in backfill.listed.items():
                summary.backfilled[object_type] = summary.backfilled.get(object_type, 0) + listed
            summary.backfill_complete = backfill.complete
        if not backfilling or summary.backfill_complete:
            report = sync_events(
                api,
                publisher,
                cursors,
                now_s=now_s,
                start_s=now_s,  # never used: the backfill or an earlier pull set the cursor
                window_seconds=stripe.window_seconds,
                settle_seconds=stripe.settle_seconds,
                progress=progress,
                stop=stop,
            )
            summary.add(report.published)
            summary.cursor_created_gte = report.cursor_to
    summary.seconds += time.perf_counter() - started
    summary.rate_limited += api.rate_limited
    summary.end_offsets = kafka.end_offsets()
    return summary
