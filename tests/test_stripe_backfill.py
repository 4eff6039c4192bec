"""History beyond Stripe's 30 days of events: the list-endpoint backfill, against a local Stripe API over real HTTP.

What a team deploying txstream needs from it: a first pull sees last year, an outage of over
a month loses nothing, a crash mid-backfill resumes, and where the backfill hands over to the
Events cursor nothing falls in between (the latest version of every object is what Stripe
holds now).
"""

from __future__ import annotations

import threading
import time
from collections import Counter

import orjson

from stripe_helpers import FakeStripe, headers_of, read_topic, start_events_at
from txstream_dagster.defs.stripe_source.backfill import (
    BACKFILLED_TYPES,
    backfill_stream,
    events_are_kept_since,
    needs_backfill,
    plan_backfill,
    request_backfill,
)
from txstream_dagster.defs.stripe_source.cursors import CursorStore
from txstream_dagster.defs.stripe_source.stripe_api import cursor_stream
from txstream_dagster.defs.stripe_source.synthetic_charges import DAY_MS, SyntheticStripe
from txstream_dagster.defs.stripe_source.topic_feeds import pull_stripe
from txstream_dagster.resources import KafkaResource, PostgresResource
from txstream_spark.event_contract import HEADER_EVENT_TIME, HEADER_PAYOUT

DAY = 86_400
NOW = 1_800_000_000


def add_objects(fake: FakeStripe, seed: int, start_ms: int, end_ms: int, charges: int) -> None:
    """Objects whose events Stripe no longer keeps: each as it is now, in its list endpoint only (a balance
    transaction also under the payout that paid it out)."""
    for version in SyntheticStripe(seed).history(start_ms, end_ms, charges):
        fake.add_object(version.payload)
        if version.payout_id:
            fake.pay_out(version.payout_id, [version.object_id])


def reconciled_payout_of(fake: FakeStripe) -> dict[str, str]:
    """Balance transaction id → the payout that paid it out, where Stripe lists it under that payout."""
    return {
        balance_transaction: payout
        for balance_transaction, payout in fake.payout_of.items()
        if fake.objects[payout]["reconciliation_status"] == "completed"
    }


def assert_each_object_published_once(kafka: KafkaResource, fake: FakeStripe, but: set[str] = frozenset()) -> None:
    """Every object Stripe holds (`but` these) once; a balance transaction a reconciled payout paid out once
    more, later, naming the payout: the version the stream keeps."""
    messages: dict[str, list[tuple[int, str | None]]] = {}
    for record in read_topic(kafka):
        headers = headers_of(record)
        messages.setdefault(record.key.decode(), []).append(
            (int(headers[HEADER_EVENT_TIME]), headers.get(HEADER_PAYOUT))
        )
    paid_out = reconciled_payout_of(fake)
    assert set(messages) == set(fake.objects) - but
    for object_id, found in messages.items():
        found.sort(key=lambda message: message[0])
        expected = [None, paid_out[object_id]] if object_id in paid_out else [None]
        assert [payout for _, payout in found] == expected, object_id


def latest_in_topic(kafka: KafkaResource) -> dict[str, dict]:
    """Each object's version with the latest event time: what the stream's upsert keeps."""
    latest: dict[str, tuple[int, dict]] = {}
    for record in read_topic(kafka):
        at = int(headers_of(record)[HEADER_EVENT_TIME])
        if record.key.decode() not in latest or at >= latest[record.key.decode()][0]:
            latest[record.key.decode()] = (at, orjson.loads(record.value))
    return {object_id: payload for object_id, (_, payload) in latest.items()}


# --- when, and from where ---------------------------------------------------------------------


def test_a_first_pull_an_unfinished_backfill_and_a_cursor_older_than_stripe_keeps_events_need_a_backfill():
    fresh = {"created_gte": NOW - 3600}
    stale = {"created_gte": NOW - 31 * DAY}
    assert needs_backfill(None, None, NOW)
    assert not needs_backfill(fresh, None, NOW)
    assert needs_backfill(stale, None, NOW)
    unfinished = {"from": 0, "takeover": NOW - 60, "next": dict.fromkeys(BACKFILLED_TYPES, NOW - 3600)}
    assert needs_backfill(fresh, unfinished, NOW)
    assert not needs_backfill(fresh, {**unfinished, "completed_at": NOW}, NOW)


def test_a_backfill_starts_at_the_configured_date_or_the_stale_cursor_and_hands_over_just_before_now():
    first = plan_backfill(None, None, now_s=NOW, start_s=NOW - 400 * DAY, settle_seconds=15)
    assert first == {"from": NOW - 400 * DAY, "takeover": NOW - 15, "next": dict.fromkeys(first["next"], first["from"])}
    after_outage = plan_backfill({"created_gte": NOW - 45 * DAY}, None, now_s=NOW, start_s=0, settle_seconds=15)
    assert after_outage["from"] == NOW - 45 * DAY and after_outage["takeover"] == NOW - 15


def test_an_unfinished_backfill_resumes_unless_the_events_after_it_are_gone():
    unfinished = {"from": NOW - 400 * DAY, "takeover": NOW - 2 * DAY, "next": {"charge": NOW - 9 * DAY}}
    resumed = plan_backfill(None, unfinished, now_s=NOW, start_s=0, settle_seconds=15)
    assert resumed == {**unfinished, "next": {"charge": NOW - 9 * DAY, "refund": 0, "dispute": 0, "payout": 0}}
    too_old = {**unfinished, "takeover": NOW - 31 * DAY}
    restarted = plan_backfill(None, too_old, now_s=NOW, start_s=NOW - 400 * DAY, settle_seconds=15)
    assert restarted["takeover"] == NOW - 15 and restarted["next"]["charge"] == NOW - 400 * DAY
    assert too_old["takeover"] < events_are_kept_since(NOW) <= NOW - 29 * DAY


def test_an_object_type_no_backfill_has_listed_is_listed_from_the_start_while_the_events_go_on():
    # An account backfilled before the source took payouts on: its payouts' history is listed once.
    before_payouts = {
        "from": NOW - 400 * DAY,
        "takeover": NOW - 10 * DAY,
        "next": dict.fromkeys(("charge", "refund", "dispute"), NOW - 10 * DAY),
        "completed_at": NOW - 10 * DAY,
    }
    events = {"created_gte": NOW - 60}
    assert needs_backfill(events, before_payouts, NOW)
    plan = plan_backfill(events, before_payouts, now_s=NOW, start_s=NOW - 400 * DAY, settle_seconds=15)
    assert plan["takeover"] == NOW - 60  # the Events cursor goes on where it stands
    assert plan["next"] == {"charge": NOW - 60, "refund": NOW - 60, "dispute": NOW - 60, "payout": NOW - 400 * DAY}
    done = {**plan, "completed_at": NOW}
    assert not needs_backfill(events, done, NOW)


# --- end to end -------------------------------------------------------------------------------


def test_a_first_pull_publishes_a_year_of_history_then_the_events_take_over_with_no_gap(
    fake_stripe: FakeStripe, kafka: KafkaResource, clean_warehouse: PostgresResource
):
    now_ms = int(time.time() * 1000)
    add_objects(fake_stripe, seed=51, start_ms=now_ms - 365 * DAY_MS, end_ms=now_ms - 40 * DAY_MS, charges=400)
    fake_stripe.fail_request(3, 429, {"Retry-After": "1"}, "invalid_request_error", "Too many requests.")
    stripe = fake_stripe.account(settle_seconds=0, backfill_from="2020-01-01")
    old_charge = next(o for o in fake_stripe.objects.values() if o["object"] == "charge" and o["status"] == "succeeded")
    windows: list[tuple[str, int]] = []

    first = pull_stripe(kafka, stripe, clean_warehouse, on_backfill_window=lambda t, at: windows.append((t, at)))

    paid_out = reconciled_payout_of(fake_stripe)
    assert first.backfill_complete is True and first.backfilled["payout"] > 0 and paid_out
    assert sum(first.backfilled.values()) == len(fake_stripe.objects) == first.messages - len(paid_out)
    assert first.rate_limited == 1
    assert {t for t, _ in windows} == {"balance_transaction", "charge", "refund", "dispute", "payout"}  # progress
    assert_each_object_published_once(kafka, fake_stripe)
    # Calls per type stay few across a quiet year: windows widen while under a page.
    assert len(fake_stripe.requests_to("/v1/charges")) < 30
    # After the backfill, a change to an old object and a new charge arrive as events.
    time.sleep(1.1)
    fake_stripe.add_event("charge.refunded", {**old_charge, "amount_refunded": old_charge["amount"]}, int(time.time()))
    new_charge = {**old_charge, "id": "ch_after_backfill", "created": int(time.time())}
    fake_stripe.add_event("charge.succeeded", new_charge, int(time.time()))
    time.sleep(1.1)
    second = pull_stripe(kafka, stripe, clean_warehouse)

    assert second.backfill_complete is None and second.messages == 2
    assert latest_in_topic(kafka) == fake_stripe.objects  # every object, as Stripe holds it now
    published = Counter(r.key.decode() for r in read_topic(kafka) if r.key.decode() not in paid_out)
    assert {object_id for object_id, n in published.items() if n > 1} == {old_charge["id"]}  # the refunded charge


def test_a_backfill_stopped_midway_resumes_where_it_stopped_and_publishes_nothing_twice(
    fake_stripe: FakeStripe, kafka: KafkaResource, clean_warehouse: PostgresResource
):
    now_ms = int(time.time() * 1000)
    add_objects(fake_stripe, seed=52, start_ms=now_ms - 200 * DAY_MS, end_ms=now_ms - 60 * DAY_MS, charges=300)
    stripe = fake_stripe.account(backfill_from="2000-01-01", window_seconds=7 * DAY)
    stop = threading.Event()

    def stop_after_a_few_charges(object_type: str, created_before: int) -> None:
        if object_type == "charge" and created_before > now_ms // 1000 - 150 * DAY:
            stop.set()  # what Ctrl-C does: the window in flight is acknowledged, then the pull ends

    first = pull_stripe(kafka, stripe, clean_warehouse, on_backfill_window=stop_after_a_few_charges, stop=stop)
    position = CursorStore(clean_warehouse, "stripe-test").load(backfill_stream(kafka.topic))
    assert first.backfill_complete is False and 0 < first.messages < len(fake_stripe.objects)
    assert CursorStore(clean_warehouse, "stripe-test").load(cursor_stream(kafka.topic)) is None
    assert "completed_at" not in position

    second = pull_stripe(kafka, stripe, clean_warehouse)  # a new process: the cursor says where to go on

    assert second.backfill_complete is True
    assert_each_object_published_once(kafka, fake_stripe)


def test_after_an_outage_longer_than_stripe_keeps_events_the_gap_is_listed_not_lost(
    fake_stripe: FakeStripe, kafka: KafkaResource, clean_warehouse: PostgresResource
):
    now_s = int(time.time())
    start_events_at(clean_warehouse, kafka.topic, now_s - 45 * DAY)  # the last pull, 45 days ago
    add_objects(fake_stripe, seed=53, start_ms=(now_s - 44 * DAY) * 1000, end_ms=(now_s - 31 * DAY) * 1000, charges=50)
    before_the_outage = {"id": "ch_before_outage", "object": "charge", "created": now_s - 50 * DAY, "amount": 1}
    fake_stripe.add_object({**before_the_outage, "currency": "gbp"})

    summary = pull_stripe(kafka, fake_stripe.account(), clean_warehouse)

    assert summary.backfill_complete is True
    assert_each_object_published_once(kafka, fake_stripe, but={"ch_before_outage"})  # from the old cursor on
    assert CursorStore(clean_warehouse, "stripe-test").load(cursor_stream(kafka.topic))["created_gte"] > now_s - 60


def test_a_requested_backfill_lists_a_day_again_and_skips_no_change_made_meanwhile(
    fake_stripe: FakeStripe, kafka: KafkaResource, clean_warehouse: PostgresResource
):
    now_s = int(time.time())
    cursors = CursorStore(clean_warehouse, "stripe-test")
    start_events_at(clean_warehouse, kafka.topic, now_s - 3600)
    add_objects(fake_stripe, seed=54, start_ms=(now_s - 3 * DAY) * 1000, end_ms=(now_s - 2 * DAY) * 1000, charges=20)

    plan = request_backfill(cursors, kafka.topic, from_s=now_s - 3 * DAY, now_s=now_s, settle_seconds=15)
    summary = pull_stripe(kafka, fake_stripe.account(), clean_warehouse)

    assert plan["takeover"] == now_s - 3600  # where the Events cursor stood: nothing after it is skipped
    assert summary.backfill_complete is True
    assert any(obj["object"] == "balance_transaction" for obj in fake_stripe.objects.values())
    assert_each_object_published_once(kafka, fake_stripe)  # balance transactions too: their cursor went back


def test_an_account_backfilled_before_payouts_has_its_payouts_listed_once_and_its_events_cursor_kept(
    fake_stripe: FakeStripe, kafka: KafkaResource, clean_warehouse: PostgresResource
):
    now_s = int(time.time())
    add_objects(fake_stripe, seed=55, start_ms=(now_s - 120 * DAY) * 1000, end_ms=(now_s - 40 * DAY) * 1000, charges=80)
    cursors = CursorStore(clean_warehouse, "stripe-test")
    events_at = now_s - 3600
    cursors.save(cursor_stream(kafka.topic), {"created_gte": events_at})
    cursors.save(  # what a backfill completed before payouts were ingested left
        backfill_stream(kafka.topic),
        {
            "from": now_s - 200 * DAY,
            "takeover": now_s - 20 * DAY,
            "next": dict.fromkeys(("charge", "refund", "dispute"), now_s - 20 * DAY),
            "completed_at": now_s - 20 * DAY,
        },
    )

    summary = pull_stripe(kafka, fake_stripe.account(backfill_from="2020-01-01"), clean_warehouse)

    already_backfilled = {
        i for i, obj in fake_stripe.objects.items() if obj["object"] in ("charge", "refund", "dispute")
    }
    assert summary.backfill_complete is True and summary.backfilled["payout"] > 0
    assert fake_stripe.requests_to("/v1/charges") == [] and fake_stripe.requests_to("/v1/events")  # events go on
    # Payouts and balance transactions once, those a reconciled payout paid out once more naming it.
    assert_each_object_published_once(kafka, fake_stripe, but=already_backfilled)
    assert min(params["created[gte]"] for _, params in fake_stripe.requests_to("/v1/events")) == str(events_at)
