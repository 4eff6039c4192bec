"""History the Events API no longer holds: Stripe's objects listed from their list endpoints.

Stripe keeps events for 30 days. On a first pull, and whenever the Events cursor
is older than that (an outage of over a month), charges, refunds, disputes and
payouts are listed instead (`GET /v1/charges`, `/v1/refunds`, `/v1/disputes`,
`/v1/payouts`) from the start date, oldest first, with a `created` cursor per
object type that moves only after Kafka acknowledged a whole window: the same
discipline as the Events cursor, so a crash resumes where it stopped. A listed
payout whose balance transactions Stripe can list has them published naming it,
as the Events pull does (stripe_api.publish_paid_out). Balance transactions
themselves have no events and a cursor of their own (stripe_api.sync_balance_transactions).

A listed object is the object as it is *now*, so it is published as a version
observed when it was listed. The backfill lists what was created before its
`takeover` second (its start, less `settle_seconds`), and the Events cursor then
starts at `takeover`:
- an object created before `takeover` and changed later: the listing already holds
  every change made before it was listed, and the change's event, stamped earlier
  than the listing, lands as an older version (superseded, counted as a duplicate);
  changes after the listing arrive as events stamped later, and win;
- an object created from `takeover` on arrives by its events only.
Nothing between the two is skipped, and the stream's upsert (one row per object id,
the latest version wins) counts nothing twice.

An object type the source took on after an account's backfill had completed (payouts,
for a deployment older than them) is listed once from the start date, while the
Events cursor goes on from where it stands.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from typing import Any

from txstream_dagster.defs.stripe_source.cursors import CursorStore
from txstream_dagster.defs.stripe_source.publisher import Publisher, PublishReport
from txstream_dagster.defs.stripe_source.stripe_api import (
    EVENT_RETENTION_DAYS,
    LIST_PATHS,
    MAX_LIST_WINDOW_SECONDS,
    StripeApi,
    balance_transactions_stream,
    cursor_stream,
    publish_paid_out,
    versions_from_list,
    walk_windows,
)

log = logging.getLogger(__name__)

# The object types whose history is listed before the Events cursor takes over, in the order they are listed.
BACKFILLED_TYPES = ("charge", "refund", "dispute", "payout")
# The Events cursor must stay this far inside Stripe's 30 days, so its first window is still served.
RETENTION_MARGIN_SECONDS = 3_600


def backfill_stream(topic: str) -> str:
    return f"backfill:{topic}"


def events_are_kept_since(now_s: int) -> int:
    """The oldest second the Events API can still be asked for, with a margin."""
    return now_s - EVENT_RETENTION_DAYS * 86_400 + RETENTION_MARGIN_SECONDS


def never_backfilled(backfill_position: dict[str, Any] | None) -> set[str]:
    """The object types an account's backfill has not covered: the source took them on since. Pure."""
    return set(BACKFILLED_TYPES) - backfill_position["next"].keys() if backfill_position else set()


def needs_backfill(
    events_position: dict[str, Any] | None, backfill_position: dict[str, Any] | None, now_s: int
) -> bool:
    """A first pull, a backfill left unfinished, an Events cursor older than Stripe keeps events, or an object
    type no backfill has listed yet. Pure."""
    if backfill_position and ("completed_at" not in backfill_position or never_backfilled(backfill_position)):
        return True
    return events_position is None or events_position["created_gte"] < events_are_kept_since(now_s)


def takeover_point(events_position: dict[str, Any] | None, *, now_s: int, settle_seconds: int) -> int:
    """Where the Events cursor goes on after a backfill: where it stands while Stripe still keeps the events
    after it (no change made meanwhile is skipped), otherwise just before now. Pure."""
    takeover = now_s - settle_seconds
    if events_position and events_position["created_gte"] >= events_are_kept_since(now_s):
        takeover = min(takeover, events_position["created_gte"])
    return takeover


def plan_backfill(
    events_position: dict[str, Any] | None,
    backfill_position: dict[str, Any] | None,
    *,
    now_s: int,
    start_s: int,
    settle_seconds: int,
) -> dict[str, Any]:
    """Where the backfill starts or resumes. Pure.

    An unfinished backfill resumes unless its takeover point has itself fallen out of the Events
    API's 30 days (the events after it would be gone): then it starts over. A new backfill starts
    at the old Events cursor (an outage) or at `start_s` (a first pull); an object type no earlier
    backfill listed starts at `start_s`, and a fresh Events cursor goes on from where it stands.
    """
    if (
        backfill_position
        and "completed_at" not in backfill_position
        and backfill_position["takeover"] >= events_are_kept_since(now_s)
    ):
        return {**backfill_position, "next": {t: backfill_position["next"].get(t, start_s) for t in BACKFILLED_TYPES}}
    if backfill_position and "completed_at" not in backfill_position:
        log.warning("The unfinished Stripe backfill is older than Stripe keeps events: starting it over")
    takeover = takeover_point(events_position, now_s=now_s, settle_seconds=settle_seconds)
    from_s = min(events_position["created_gte"], takeover) if events_position else start_s
    new_types = never_backfilled(backfill_position)
    starts = {t: start_s if t in new_types else from_s for t in BACKFILLED_TYPES}
    return {"from": min(starts.values()), "takeover": max(takeover, from_s), "next": starts}


def request_backfill(
    cursors: CursorStore, topic: str, *, from_s: int, now_s: int, settle_seconds: int
) -> dict[str, Any]:
    """Have the next pull list every object created from `from_s` again (objects the reconciliation found
    missing), before the Events cursor goes on. It takes over where the Events cursor stands when that is
    still inside Stripe's 30 days, so no change made meanwhile is skipped. The balance-transaction cursor
    goes back to `from_s` too."""
    takeover = takeover_point(cursors.load(cursor_stream(topic)), now_s=now_s, settle_seconds=settle_seconds)
    plan = {"from": from_s, "takeover": max(takeover, from_s), "next": dict.fromkeys(BACKFILLED_TYPES, from_s)}
    cursors.save(backfill_stream(topic), plan)
    balance_transactions = cursors.load(balance_transactions_stream(topic))
    if balance_transactions and balance_transactions["created_gte"] > from_s:
        cursors.save(balance_transactions_stream(topic), {"created_gte": from_s})
    return plan


@dataclass
class BackfillReport:
    complete: bool = False
    listed: dict[str, int] = field(default_factory=dict)
    published: PublishReport = field(default_factory=PublishReport)
    takeover: int | None = None  # where the Events cursor starts once complete
    next: dict[str, int] = field(default_factory=dict)  # per object type: created before this is published


def backfill_objects(
    api: StripeApi,
    publisher: Publisher,
    cursors: CursorStore,
    *,
    now_s: int,
    start_s: int,
    window_seconds: int,
    settle_seconds: int,
    progress: Callable[[int], None] | None = None,
    on_window: Callable[[str, int], None] | None = None,
    stop: threading.Event | None = None,
) -> BackfillReport:
    """List every object created from the start to the takeover point, then hand over to the Events cursor.

    `on_window(object_type, created_before)` reports progress after each acknowledged window.
    """
    events = cursor_stream(publisher.topic)
    stream = backfill_stream(publisher.topic)
    plan = plan_backfill(
        cursors.load(events), cursors.load(stream), now_s=now_s, start_s=start_s, settle_seconds=settle_seconds
    )
    cursors.save(stream, plan)
    report = BackfillReport(takeover=plan["takeover"], next=dict(plan["next"]))
    log.info("Backfilling Stripe objects created from %s to %s from the list endpoints", plan["from"], plan["takeover"])
    for object_type in BACKFILLED_TYPES:
        report.listed[object_type] = 0

        def publish_window(gte: int, lt: int, objects: list[dict[str, Any]], object_type: str = object_type) -> None:
            versions = versions_from_list(object_type, objects, int(time.time() * 1000))
            report.published.add(publisher.publish(versions, progress))  # returns once Kafka acknowledged all
            report.published.add(publish_paid_out(api, publisher, versions, progress))
            report.next[object_type] = lt
            cursors.save(stream, {**plan, "next": report.next})
            report.listed[object_type] += len(versions)
            if on_window:
                on_window(object_type, lt)

        walk_windows(
            report.next[object_type],
            plan["takeover"],
            window_seconds,
            partial(api.list_between, LIST_PATHS[object_type]),
            publish_window,
            max_span=MAX_LIST_WINDOW_SECONDS,
            stop=stop,
        )
        if report.next[object_type] < plan["takeover"]:  # stopped: resume here next time
            return report
    cursors.save(events, {"created_gte": plan["takeover"]})
    cursors.save(stream, {**plan, "next": report.next, "completed_at": int(time.time())})
    report.complete = True
    log.info("Backfill complete: %s; the Events cursor takes over at %s", report.listed, plan["takeover"])
    return report
