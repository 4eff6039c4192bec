"""The sink against real PostgreSQL: latest version wins, replays change nothing, nothing is lost."""

from __future__ import annotations

import pyarrow as pa

from stream_helpers import Message, kafka_batch, land_messages, message_for, write_batch
from stripe_helpers import stripe_fixture
from txstream_dagster.resources import PostgresResource
from txstream_spark.event_contract import message_headers
from txstream_spark.transform import transform_batch

T0 = 1_760_000_000_000  # epoch ms, 2025-10: event times are plausible ones (not before 2000, not in the future)


def charge(object_id: str, **fields) -> dict:
    return {**stripe_fixture("charge"), "id": object_id, **fields}


def table_of(*messages: Message) -> pa.Table:
    return pa.Table.from_batches([transform_batch(kafka_batch(messages))])


def rows(postgres: PostgresResource) -> dict[str, tuple]:
    return {
        r[0]: r[1:]
        for r in postgres.fetch_all(
            "SELECT object_id, amount, status, payload->>'refunded', ingested_at FROM raw.transactions"
        )
    }


def test_a_batch_lands_every_charge_once_with_its_offsets(clean_warehouse: PostgresResource):
    messages = [message_for(charge(f"ch_{i}", amount=100 * i), offset=i) for i in range(10)]
    result = land_messages(clean_warehouse, messages)
    assert (result.consumed, result.inserted, result.updated, result.duplicates) == (10, 10, 0, 0)
    assert clean_warehouse.fetch_all("SELECT sum(amount), count(DISTINCT object_id) FROM raw.transactions") == [
        (4500, 10)
    ]
    assert clean_warehouse.fetch_all("SELECT kafka_partition, next_offset FROM ops.stream_offsets") == [(0, 10)]


def test_a_replayed_batch_changes_nothing(clean_warehouse: PostgresResource):
    table = table_of(*[message_for(charge(f"ch_{i}"), offset=i) for i in range(5)], Message(value=b"bad", offset=5))
    with clean_warehouse.connect() as conn:
        first = write_batch(conn, table, spark_batch_id=0)
    before = rows(clean_warehouse)
    with clean_warehouse.connect() as conn:
        replay = write_batch(conn, table, spark_batch_id=0)
    assert (first.inserted, first.quarantined, first.replayed) == (5, 1, False)
    assert (replay.replayed, replay.inserted, replay.updated, replay.quarantined) == (True, 0, 0, 0)
    assert rows(clean_warehouse) == before
    assert clean_warehouse.fetch_one("SELECT count(*) FROM raw.quarantined_events") == (1,)
    assert clean_warehouse.fetch_one("SELECT count(*) FROM ops.stream_batches") == (1,)


def test_a_later_version_wins_and_an_older_one_arriving_late_is_ignored(clean_warehouse: PostgresResource):
    created = charge("ch_1", refunded=False, amount_refunded=0)
    refunded = charge("ch_1", refunded=True, amount_refunded=100)
    land_messages(clean_warehouse, [message_for(created, event_time_ms=T0 + 1_000, offset=1)])
    update = land_messages(clean_warehouse, [message_for(refunded, event_time_ms=T0 + 2_000, offset=2)])
    late = land_messages(clean_warehouse, [message_for(created, event_time_ms=T0 + 1_000, offset=3)])
    assert (update.updated, late.duplicates) == (1, 1)
    assert rows(clean_warehouse)["ch_1"][2] == "true"


def test_two_versions_in_one_batch_land_as_the_latest(clean_warehouse: PostgresResource):
    result = land_messages(
        clean_warehouse,
        [
            message_for(charge("ch_1", status="pending"), event_time_ms=T0 + 1_000, offset=1),
            message_for(charge("ch_1", status="succeeded"), event_time_ms=T0 + 2_000, offset=2),
        ],
    )
    assert (result.inserted, result.duplicates) == (1, 1)
    assert rows(clean_warehouse)["ch_1"][1] == "succeeded"


def test_the_same_version_published_twice_is_a_duplicate_not_an_update(clean_warehouse: PostgresResource):
    land_messages(clean_warehouse, [message_for(charge("ch_1"), event_time_ms=T0 + 1_000, offset=1)])
    before = rows(clean_warehouse)
    again = land_messages(clean_warehouse, [message_for(charge("ch_1"), event_time_ms=T0 + 1_000, offset=2)])
    assert (again.updated, again.duplicates) == (0, 1)
    assert rows(clean_warehouse) == before


def test_quarantined_messages_keep_their_bytes_reason_and_offsets(clean_warehouse: PostgresResource):
    land_messages(clean_warehouse, [Message(value=b"\xffnot utf8", key=b"k1", partition=2, offset=41)])
    assert clean_warehouse.fetch_all(
        "SELECT kafka_partition, kafka_offset, kafka_key, raw_value, reason FROM raw.quarantined_events"
    ) == [(2, 41, b"k1", b"\xffnot utf8", "invalid_utf8")]


def test_every_batch_accounts_for_every_message(clean_warehouse: PostgresResource):
    land_messages(clean_warehouse, [message_for(charge("ch_1"), offset=1), Message(value=b"x", offset=2)])
    land_messages(clean_warehouse, [message_for(charge("ch_1"), offset=3), message_for(charge("ch_2"), offset=4)])
    assert clean_warehouse.fetch_all(
        "SELECT sum(consumed), sum(inserted + updated + duplicates + quarantined) FROM ops.stream_batches"
    ) == [(4, 4)]


def test_a_recreated_topic_lands_its_messages_and_resets_the_offsets(clean_warehouse: PostgresResource):
    land_messages(clean_warehouse, [message_for(charge(f"ch_old_{i}"), offset=100 + i) for i in range(3)], topic_id="A")
    result = land_messages(clean_warehouse, [message_for(charge("ch_new"), offset=0)], topic_id="B")
    assert result.inserted == 1
    assert clean_warehouse.fetch_all("SELECT kafka_topic_id, next_offset FROM ops.stream_offsets") == [("B", 1)]


def test_refunds_and_disputes_land_beside_their_charge(clean_warehouse: PostgresResource):
    refund, dispute = stripe_fixture("refund"), stripe_fixture("dispute")
    land_messages(clean_warehouse, [message_for(charge(refund["charge"])), message_for(refund), message_for(dispute)])
    assert sorted(clean_warehouse.fetch_all("SELECT object_type, charge_id FROM raw.transactions")) == sorted(
        [("charge", refund["charge"]), ("refund", refund["charge"]), ("dispute", dispute["charge"])]
    )


def test_balance_transactions_and_payouts_land_and_a_bt_keeps_the_payout_it_was_listed_under(
    clean_warehouse: PostgresResource,
):
    bt, payout = stripe_fixture("balance_transaction"), stripe_fixture("payout")
    refund_bt = {**bt, "id": "txn_refund", "amount": -2_500, "net": -2_500, "type": "refund"}
    pending = {**bt, "status": "pending"}
    land_messages(
        clean_warehouse,
        [
            message_for(pending, event_time_ms=T0 + 1_000, offset=1),
            message_for(refund_bt, event_time_ms=T0 + 1_000, offset=2),
            message_for(payout, event_time_ms=T0 + 1_000, offset=3),
        ],
    )
    listed = message_for(bt, event_time_ms=T0 + 2_000, offset=4)
    listed.headers = message_headers("balance_transaction", "synthetic", T0 + 2_000, None, payout["id"])
    paid_out = land_messages(clean_warehouse, [listed])
    # Listed again without its payout (a later list call) and unchanged: a duplicate that forgets nothing.
    again = land_messages(clean_warehouse, [message_for(bt, event_time_ms=T0 + 3_000, offset=5)])
    assert (paid_out.updated, again.updated, again.duplicates) == (1, 0, 1)
    assert sorted(
        clean_warehouse.fetch_all("SELECT object_id, object_type, amount, status, payout_id FROM raw.transactions")
    ) == [
        (payout["id"], "payout", 1_100, "in_transit", None),
        (bt["id"], "balance_transaction", 100, "available", payout["id"]),
        ("txn_refund", "balance_transaction", -2_500, "available", None),
    ]
