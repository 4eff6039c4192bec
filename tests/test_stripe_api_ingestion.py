"""Real-mode ingestion: a local Stripe API (real HTTP) → the stripe library → the real broker, cursor in PostgreSQL."""

from __future__ import annotations

import time
from collections import Counter

import orjson
import pytest

from resource_helpers import kafka_resource
from stripe_helpers import (
    FakeStripe,
    balance_transaction_object,
    events_from_versions,
    headers_of,
    payout_object,
    read_topic,
    start_events_at,
)
from txstream_dagster.defs.stripe_source.cursors import CursorStore
from txstream_dagster.defs.stripe_source.object_versions import ObjectVersion
from txstream_dagster.defs.stripe_source.publisher import DeliveryFailed, Publisher
from txstream_dagster.defs.stripe_source.resources import StripeResource
from txstream_dagster.defs.stripe_source.stripe_api import (
    EVENT_TYPES,
    EVENT_TYPES_PER_REQUEST,
    StripeSourceError,
    StripeUnavailable,
    balance_transactions_stream,
    cursor_stream,
    payouts_to_list,
    retry_after_seconds,
    sync_balance_transactions,
    sync_events,
    versions_from_events,
)
from txstream_dagster.defs.stripe_source.stripe_test_mode import create_test_charges
from txstream_dagster.defs.stripe_source.synthetic_charges import DAY_MS, SyntheticStripe
from txstream_dagster.defs.stripe_source.topic_feeds import pull_stripe, stripe_api
from txstream_dagster.dev.embedded_kafka import KafkaNode
from txstream_dagster.resources import KafkaResource, PostgresResource
from txstream_spark.event_contract import HEADER_EVENT_TIME, HEADER_OBJECT_TYPE, HEADER_PAYOUT, HEADER_SOURCE


def published_events(kafka: KafkaResource) -> Counter:
    """(object id, event time) of every message but the balance transactions' (which have no events): one per
    Stripe event, so any count above 1 is a duplicate."""
    return Counter(
        (r.key.decode(), int(headers_of(r)[HEADER_EVENT_TIME]))
        for r in read_topic(kafka)
        if headers_of(r)[HEADER_OBJECT_TYPE] != "balance_transaction"
    )


def balance_transaction_messages(kafka: KafkaResource) -> dict[str, list[tuple[int, str | None]]]:
    """Balance transaction id → (event time, payout header) of each of its messages, in event-time order."""
    messages: dict[str, list[tuple[int, str | None]]] = {}
    for record in read_topic(kafka):
        headers = headers_of(record)
        if headers[HEADER_OBJECT_TYPE] == "balance_transaction":
            messages.setdefault(record.key.decode(), []).append(
                (int(headers[HEADER_EVENT_TIME]), headers.get(HEADER_PAYOUT))
            )
    return {object_id: sorted(found) for object_id, found in messages.items()}


def balance_transactions_in(fake: FakeStripe) -> set[str]:
    return {object_id for object_id, obj in fake.objects.items() if obj["object"] == "balance_transaction"}


def add_history(fake: FakeStripe, seed: int, end_ms: int, days: int, charges: int) -> Counter:
    versions = SyntheticStripe(seed).history(end_ms - days * DAY_MS, end_ms, charges)
    return events_from_versions(fake, versions)


# --- pure parts -----------------------------------------------------------------------


def test_versions_observed_in_the_same_second_are_spaced_a_millisecond_apart_in_stripes_order():
    def event(created, obj_id, object_type="charge"):
        return {"created": created, "data": {"object": {"id": obj_id, "object": object_type}}}

    versions = versions_from_events(
        [
            event(100, "ch_1"),
            event(100, "re_1", "refund"),
            event(100, "ch_1"),
            event(101, "ch_1"),
            event(101, "price_1", "price"),  # not ours: skipped
        ]
    )
    assert [(v.object_type, v.object_id, v.event_time_ms) for v in versions] == [
        ("charge", "ch_1", 100_000),
        ("refund", "re_1", 100_001),
        ("charge", "ch_1", 100_002),
        ("charge", "ch_1", 101_000),
    ]


def test_each_events_request_asks_for_at_most_twenty_types_and_for_all_of_one_objects_events():
    # Stripe refuses more than 20 `types`; an object's events split over two requests could be merged out of order.
    def object_of(event_type: str) -> str:
        return {"charge.dispute": "dispute", "charge.refund": "refund"}.get(event_type.rsplit(".", 1)[0]) or (
            event_type.split(".")[0]
        )

    objects_per_request = [{object_of(t) for t in request} for request in EVENT_TYPES_PER_REQUEST]
    assert all(len(request) <= 20 for request in EVENT_TYPES_PER_REQUEST)
    assert len(EVENT_TYPES) == len(set(EVENT_TYPES))
    assert sum(len(objects) for objects in objects_per_request) == len(set().union(*objects_per_request))
    assert {t for t in EVENT_TYPES if t.startswith("payout.")} == {
        "payout.created",
        "payout.updated",
        "payout.paid",
        "payout.failed",
        "payout.canceled",
        "payout.reconciliation_completed",
    }


def test_a_payouts_balance_transactions_are_listed_once_stripe_has_reconciled_it():
    def payout(payout_id: str, reconciliation: str, status: str = "paid") -> ObjectVersion:
        obj = payout_object(payout_id, 1, 100, status=status, reconciliation=reconciliation)
        return ObjectVersion("payout", payout_id, 1, obj)

    versions = [
        payout("po_in_transit", "in_progress", "in_transit"),
        payout("po_reconciled", "in_progress"),
        payout("po_reconciled", "completed"),
        payout("po_reconciled", "completed"),  # updated again later: listed once
        payout("po_manual", "not_applicable"),  # Stripe lists a manual payout's transactions for no payout
        ObjectVersion("charge", "ch_1", 1, {"id": "ch_1", "object": "charge", "reconciliation_status": "completed"}),
    ]
    assert payouts_to_list(versions) == ["po_reconciled"]


def test_retry_after_is_read_in_seconds_and_an_http_date_is_ignored():
    assert retry_after_seconds({"Retry-After": "2"}) == 2.0
    assert retry_after_seconds({"retry-after": "0.5"}) == 0.5
    assert retry_after_seconds({"Retry-After": "Wed, 21 Oct 2026 07:28:00 GMT"}) is None
    assert retry_after_seconds({}) is None


# --- end to end -------------------------------------------------------------------------


def test_every_event_lands_once_through_pagination_a_rate_limit_and_server_errors(
    fake_stripe: FakeStripe, kafka: KafkaResource, clean_warehouse: PostgresResource
):
    now_ms = int(time.time() * 1000)
    kinds = add_history(fake_stripe, seed=31, end_ms=now_ms - 60_000, days=2, charges=400)
    fake_stripe.fail_request(
        2, 429, {"Retry-After": "1"}, "invalid_request_error", "Too many requests.", path="/v1/events"
    )
    fake_stripe.fail_request(4, 500)
    fake_stripe.fail_request(5, 503)

    start_events_at(clean_warehouse, kafka.topic, now_ms // 1000 - 3 * 86_400)  # an earlier pull left it there
    summary = pull_stripe(kafka, fake_stripe.account(window_seconds=86_400), clean_warehouse)

    records = read_topic(kafka)
    from_events = [r for r in records if headers_of(r)[HEADER_OBJECT_TYPE] != "balance_transaction"]
    events = fake_stripe.events
    assert summary.messages == len(records)
    assert len(from_events) == len(events) == sum(kinds.values())
    assert max(published_events(kafka).values()) == 1
    assert balance_transaction_messages(kafka).keys() == balance_transactions_in(fake_stripe)  # listed, no events
    by_event = {(e["data"]["object"]["id"], e["created"]): e["data"]["object"] for e in events}
    for record in from_events:
        headers = headers_of(record)
        assert headers[HEADER_SOURCE] == "stripe"
        assert orjson.loads(record.value) == by_event[(record.key.decode(), int(headers[HEADER_EVENT_TIME]) // 1000)]
        assert headers[HEADER_OBJECT_TYPE] == orjson.loads(record.value)["object"]
    # Pages of at most 100 were followed with starting_after; the 429's Retry-After was honoured.
    requests = fake_stripe.event_requests()
    assert any("starting_after" in params for _, params in requests)
    assert requests[2][0] - requests[1][0] >= 1.0
    assert summary.rate_limited == 1
    assert (
        summary.cursor_created_gte
        == CursorStore(clean_warehouse, "stripe-test").load(cursor_stream(kafka.topic))["created_gte"]
    )


def test_the_cursor_survives_a_restart_without_loss_or_duplicate(
    fake_stripe: FakeStripe, kafka: KafkaResource, clean_warehouse: PostgresResource
):
    t0 = int(time.time())
    add_history(fake_stripe, seed=41, end_ms=(t0 + 3600) * 1000, days=2, charges=300)  # some are "future" at t0

    def pull(now_s: int):  # a fresh process each time: new client, producer and cursor store
        stripe = fake_stripe.account()
        producer = kafka.producer()
        try:
            return sync_events(
                stripe_api(stripe),
                Publisher(producer, kafka.topic, "stripe"),
                CursorStore(clean_warehouse, "stripe-test"),
                now_s=now_s,
                start_s=t0 - 3 * 86_400,
                window_seconds=6 * 3600,
                settle_seconds=15,
            )
        finally:
            producer.close()

    first = pull(t0)
    assert 0 < first.listed < len(fake_stripe.events)
    second = pull(t0 + 2 * 3600)
    third = pull(t0 + 2 * 3600)  # a clean restart with nothing new publishes nothing

    published = published_events(kafka)
    expected = Counter((e["data"]["object"]["id"], e["created"]) for e in fake_stripe.events)
    assert first.listed + second.listed == len(fake_stripe.events)
    assert third.listed == 0 and third.published.messages == 0
    assert max(published.values()) == 1
    assert Counter((object_id, ms // 1000) for object_id, ms in published) == expected


def test_the_cursor_does_not_move_when_kafka_does_not_acknowledge(
    fake_stripe: FakeStripe, clean_warehouse: PostgresResource, kafka: KafkaResource, own_kafka: KafkaNode
):
    add_history(fake_stripe, seed=43, end_ms=int(time.time() * 1000) - 60_000, days=1, charges=50)
    first_event = min(e["created"] for e in fake_stripe.events)
    cursors = CursorStore(clean_warehouse, "stripe-test")
    start_events_at(clean_warehouse, kafka.topic, first_event - 86_400)
    down = kafka_resource(bootstrap=own_kafka.bootstrap, topic=kafka.topic)  # the same topic, on a Kafka that dies
    down.ensure_topic(partitions=1, replication=1)
    producer = down.producer(max_block_ms=500, request_timeout_ms=500, delivery_timeout_ms=1_500)
    own_kafka.stop()
    try:
        with pytest.raises(DeliveryFailed):
            sync_events(
                stripe_api(fake_stripe.account()),
                Publisher(producer, down.topic, "stripe", give_up_after_s=1),
                cursors,
                now_s=int(time.time()),
                start_s=first_event - 86_400,
                window_seconds=86_400,
                settle_seconds=15,
            )
    finally:
        producer.close(timeout=1)
    assert cursors.load(cursor_stream(kafka.topic))["created_gte"] <= first_event

    summary = pull_stripe(kafka, fake_stripe.account(), clean_warehouse)  # Kafka is back: resume from the cursor
    assert summary.messages == len(read_topic(kafka))
    assert sum(published_events(kafka).values()) == len(fake_stripe.events)


# --- payouts and balance transactions --------------------------------------------------------


def test_payouts_arrive_by_their_events_and_each_balance_transaction_names_the_payout_that_paid_it_out(
    fake_stripe: FakeStripe, kafka: KafkaResource, clean_warehouse: PostgresResource
):
    now_ms = int(time.time() * 1000)
    kinds = add_history(fake_stripe, seed=45, end_ms=now_ms - 60_000, days=20, charges=1_200)
    reconciled = {
        object_id
        for object_id, obj in fake_stripe.objects.items()
        if obj["object"] == "payout" and obj["reconciliation_status"] == "completed"
    }
    paid_out = {bt: po for bt, po in fake_stripe.payout_of.items() if po in reconciled}
    start_events_at(clean_warehouse, kafka.topic, now_ms // 1000 - 21 * 86_400)

    first = pull_stripe(kafka, fake_stripe.account(window_seconds=86_400), clean_warehouse)
    again = pull_stripe(kafka, fake_stripe.account(), clean_warehouse)  # nothing new: nothing published

    payout_events = sum(n for event_type, n in kinds.items() if event_type.startswith("payout."))
    assert reconciled and payout_events > len(reconciled)  # the history has payouts, some still in transit
    assert first.by_object_type["payout"] == payout_events and max(published_events(kafka).values()) == 1
    messages = balance_transaction_messages(kafka)
    assert messages.keys() == balance_transactions_in(fake_stripe) and len(paid_out) < len(messages)
    for balance_transaction, found in messages.items():
        # Listed once as it was created; then, once its payout was reconciled, again naming it, and later.
        expected = [None, paid_out[balance_transaction]] if balance_transaction in paid_out else [None]
        assert [payout for _, payout in found] == expected, balance_transaction
        assert found[-1][0] > found[0][0] or len(found) == 1
    listed_under = [params for _, params in fake_stripe.requests_to("/v1/balance_transactions") if "payout" in params]
    assert {params["payout"] for params in listed_under} == reconciled
    assert any("starting_after" in params for params in listed_under)  # a payout of over a page
    assert again.messages == 0
    cursors = CursorStore(clean_warehouse, "stripe-test")
    assert again.balance_transactions_cursor == cursors.load(balance_transactions_stream(kafka.topic))["created_gte"]


def test_balance_transactions_are_listed_from_the_backfill_start_once_each_across_restarts(
    fake_stripe: FakeStripe, kafka: KafkaResource, clean_warehouse: PostgresResource
):
    t0 = int(time.time())
    start_s = t0 - 3 * 365 * 86_400
    created = [start_s - 86_400, start_s, start_s + 400 * 86_400, t0 - 5 * 86_400, t0 - 3600, t0 + 1800]
    for n, at in enumerate(created):
        fake_stripe.add_object(balance_transaction_object(f"txn_{n}", at, 1_000 * (n + 1)))

    def pull(now_s: int):  # a fresh process each time: new client, producer and cursor store
        producer = kafka.producer()
        try:
            return sync_balance_transactions(
                stripe_api(fake_stripe.account()),
                Publisher(producer, kafka.topic, "stripe"),
                CursorStore(clean_warehouse, "stripe-test"),
                now_s=now_s,
                start_s=start_s,
                window_seconds=3600,
                settle_seconds=15,
            )
        finally:
            producer.close()

    first = pull(t0)
    second = pull(t0 + 3600)
    third = pull(t0 + 3600)

    messages = balance_transaction_messages(kafka)
    assert (first.listed, second.listed, third.listed) == (4, 1, 0)
    assert set(messages) == {"txn_1", "txn_2", "txn_3", "txn_4", "txn_5"}  # from the start date on, not before
    assert all(len(found) == 1 and found[0][1] is None for found in messages.values())
    assert len(fake_stripe.requests_to("/v1/balance_transactions")) < 40  # quiet years cost few calls


def test_the_balance_transaction_cursor_does_not_move_when_kafka_does_not_acknowledge(
    fake_stripe: FakeStripe, clean_warehouse: PostgresResource, kafka: KafkaResource, own_kafka: KafkaNode
):
    now_s = int(time.time())
    for n in range(150):
        fake_stripe.add_object(balance_transaction_object(f"txn_{n:03}", now_s - 86_400 + n * 60, 500 + n))
    start_events_at(clean_warehouse, kafka.topic, now_s - 2 * 86_400)
    cursors = CursorStore(clean_warehouse, "stripe-test")
    down = kafka_resource(bootstrap=own_kafka.bootstrap, topic=kafka.topic)
    down.ensure_topic(partitions=1, replication=1)
    producer = down.producer(max_block_ms=500, request_timeout_ms=500, delivery_timeout_ms=1_500)
    own_kafka.stop()
    try:
        with pytest.raises(DeliveryFailed):
            sync_balance_transactions(
                stripe_api(fake_stripe.account()),
                Publisher(producer, down.topic, "stripe", give_up_after_s=1),
                cursors,
                now_s=now_s,
                start_s=0,
                window_seconds=86_400,
                settle_seconds=15,
            )
    finally:
        producer.close(timeout=1)
    # Windows before the first balance transaction may have moved it; never past one Kafka did not take.
    assert cursors.load(balance_transactions_stream(kafka.topic))["created_gte"] <= now_s - 86_400

    pull_stripe(kafka, fake_stripe.account(), clean_warehouse)  # Kafka is back: resume from the cursor
    messages = balance_transaction_messages(kafka)
    assert messages.keys() == balance_transactions_in(fake_stripe)
    assert all(len(found) == 1 for found in messages.values())


# --- Stripe says no -----------------------------------------------------------------------------


def test_a_rejected_key_stops_with_a_message_naming_stripe_api_key_and_never_showing_it(fake_stripe: FakeStripe):
    wrong_key = "sk_test_wrong_1234567890"
    api = stripe_api(StripeResource(api_key=wrong_key, api_base=fake_stripe.url))
    with pytest.raises(StripeSourceError, match="STRIPE_API_KEY") as caught:
        api.events_between(0, 10)
    assert "401" in str(caught.value) and wrong_key not in str(caught.value)


def test_a_key_without_permission_is_told_which_access_it_needs(fake_stripe: FakeStripe):
    fake_stripe.fail_request(
        1,
        403,
        error_type="invalid_request_error",
        message="The provided key does not have the required permissions for this endpoint.",
    )
    with pytest.raises(StripeSourceError, match=r"may not call GET /v1/events.*Events"):
        stripe_api(fake_stripe.account()).events_between(0, 10)


def test_an_invalid_request_names_the_parameter_stripe_rejected(fake_stripe: FakeStripe):
    fake_stripe.fail_request(
        1, 400, error_type="invalid_request_error", message="Invalid timestamp", param="created[gte]"
    )
    with pytest.raises(StripeSourceError, match=r"created\[gte\].*Invalid timestamp"):
        stripe_api(fake_stripe.account()).events_between(0, 10)


def test_a_rate_limit_stripe_says_not_to_retry_stops_as_unavailable(fake_stripe: FakeStripe):
    fake_stripe.fail_request(1, 429, {"Stripe-Should-Retry": "false"}, "invalid_request_error", "Too many requests.")
    with pytest.raises(StripeUnavailable, match="429"):
        stripe_api(fake_stripe.account()).events_between(0, 10)


# --- write mode ---------------------------------------------------------------------------------


def test_test_charges_are_created_only_with_a_test_key_and_only_once_per_seed(
    fake_stripe: FakeStripe, kafka: KafkaResource, clean_warehouse: PostgresResource
):
    api = stripe_api(fake_stripe.account())
    with pytest.raises(StripeSourceError, match="test-mode key"):
        create_test_charges(api, "live", 5, seed=1)

    outcome = create_test_charges(api, "test", 30, seed=1)
    again = create_test_charges(api, "test", 30, seed=1)  # same idempotency keys: nothing new

    assert outcome == again
    assert outcome["succeeded"] + outcome["declined"] == 30 == len(fake_stripe.charges)
    assert len({c["currency"] for c in fake_stripe.charges.values()}) > 3
    assert len({c["payment_method_details"]["card"]["brand"] for c in fake_stripe.charges.values()}) > 3
    time.sleep(1.1)  # the pull leaves out events younger than settle_seconds
    summary = pull_stripe(kafka, fake_stripe.account(settle_seconds=0), clean_warehouse)
    assert summary.by_object_type["charge"] >= 30
