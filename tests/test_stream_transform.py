"""What a Kafka message becomes: a typed row, or a quarantine row saying why. Pure, no services."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pyarrow as pa
import pytest

from stream_helpers import Message, kafka_batch, message_for
from stripe_helpers import stripe_fixture
from txstream_spark.event_contract import (
    HEADER_API_VERSION,
    HEADER_EVENT_TIME,
    HEADER_OBJECT_TYPE,
    HEADER_PAYOUT,
    HEADER_SOURCE,
    MAX_MESSAGE_BYTES,
    message_headers,
)
from txstream_spark.transform import (
    EVENT_TIME_FUTURE_TOLERANCE,
    OUTPUT_SCHEMA,
    Rejected,
    parse_message,
    transform_batch,
)


def rows_of(*messages: Message) -> list[dict]:
    return transform_batch(kafka_batch(messages)).to_pylist()


def test_stripe_fixture_objects_become_typed_rows():
    charge, refund, dispute = stripe_fixture("charge"), stripe_fixture("refund"), stripe_fixture("dispute")
    rows = rows_of(message_for(charge), message_for(refund), message_for(dispute))
    assert [r["quarantine_reason"] for r in rows] == [None, None, None]
    assert [(r["object_id"], r["object_type"], r["amount"], r["currency"]) for r in rows] == [
        (charge["id"], "charge", charge["amount"], charge["currency"]),
        (refund["id"], "refund", refund["amount"], refund["currency"]),
        (dispute["id"], "dispute", dispute["amount"], dispute["currency"]),
    ]
    assert rows[0]["charge_id"] == charge["id"]
    assert rows[1]["charge_id"] == refund["charge"]
    assert rows[2]["charge_id"] == dispute["charge"]
    assert rows[0]["created_at"] == datetime.fromtimestamp(charge["created"], UTC)
    assert json.loads(rows[0]["payload"]) == charge


def test_the_payload_is_kept_exactly_as_stripe_sent_it():
    charge = stripe_fixture("charge")
    raw = json.dumps(charge, indent=2).encode()
    [row] = rows_of(Message(value=raw, key=b"x"))
    assert row["payload"] == raw.decode()


def test_event_time_comes_from_the_header_else_the_broker_timestamp():
    charge = stripe_fixture("charge")
    [with_header] = rows_of(message_for(charge, event_time_ms=1_700_000_000_123))
    assert with_header["event_time"] == datetime(2023, 11, 14, 22, 13, 20, 123000, tzinfo=UTC)
    stamp = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
    [without] = rows_of(Message(value=json.dumps(charge).encode(), timestamp=stamp))
    assert without["event_time"] == stamp


def test_expanded_references_are_reduced_to_their_ids():
    refund = dict(stripe_fixture("refund"), charge={"id": "ch_expanded", "object": "charge"})
    [row] = rows_of(message_for(refund))
    assert row["charge_id"] == "ch_expanded"


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        (None, "empty_value"),
        (b"\xff\xfe{}", "invalid_utf8"),
        (b'{"id": "ch_1", "amount": ', "invalid_json"),
        (b"[1, 2, 3]", "not_an_object"),
        (b'"just a string"', "not_an_object"),
        (b'{"object": "invoice", "id": "in_1"}', "unknown_object_type"),
        (b'{"id": "ch_1", "amount": 100}', "unknown_object_type"),
        (b"{" + b'"pad": "' + b"x" * MAX_MESSAGE_BYTES + b'"}', "oversized"),
    ],
)
def test_malformed_messages_are_quarantined_with_a_reason(value, reason):
    [row] = rows_of(Message(value=value, key=b"k", offset=7))
    assert row["quarantine_reason"] == reason
    assert row["quarantine_detail"]
    assert row["raw_value"] == value
    assert row["kafka_offset"] == 7
    assert row["object_id"] is None


@pytest.mark.parametrize(
    ("change", "reason", "detail"),
    [
        ({"id": None}, "missing_field", "'id'"),
        ({"amount": None}, "missing_field", "'amount'"),
        ({"currency": None}, "missing_field", "'currency'"),
        ({"amount": "100"}, "wrong_type", "'amount' must be an integer"),
        ({"amount": 10.5}, "wrong_type", "'amount' must be an integer"),
        ({"amount": True}, "wrong_type", "'amount' must be an integer"),
        ({"amount": -1}, "invalid_value", "negative"),
        ({"currency": "GBP"}, "invalid_value", "lower-case ISO 4217"),
        ({"currency": "pounds"}, "invalid_value", "lower-case ISO 4217"),
        ({"created": "yesterday"}, "wrong_type", "'created'"),
        ({"created": 99}, "invalid_value", "'created'"),
        ({"livemode": "no"}, "wrong_type", "'livemode'"),
        ({"customer": 42}, "wrong_type", "'customer'"),
        ({"description": "nul \u0000 byte"}, "unsupported_json", "\\u0000"),
        # Valid JSON that Arrow's int64 and PostgreSQL's bigint cannot hold (orjson reads it as a Python int).
        ({"amount": 2**64 - 1}, "invalid_value", "larger than a bigint holds"),
        # A btree index entry cannot hold it: the apply would fail on every retry.
        ({"id": "ch_" + "x" * 3000}, "invalid_value", "'id' is 3003 characters long"),
        ({"status": "s" * 200}, "invalid_value", "'status'"),
    ],
)
def test_charges_with_bad_fields_are_quarantined_naming_the_field(change, reason, detail):
    charge = {**stripe_fixture("charge"), **change}
    charge = {k: v for k, v in charge.items() if v is not None}
    [row] = rows_of(Message(value=json.dumps(charge).encode(), key=b"k"))
    assert row["quarantine_reason"] == reason
    assert detail in row["quarantine_detail"]


def test_a_refund_without_its_charge_is_quarantined():
    refund = {k: v for k, v in stripe_fixture("refund").items() if k != "charge"}
    [row] = rows_of(message_for(refund))
    assert (row["quarantine_reason"], row["quarantine_detail"]) == ("missing_field", "refund has no 'charge'")


def test_a_header_contradicting_the_object_type_is_quarantined():
    message = message_for(stripe_fixture("charge"))
    message.headers = [(k, b"refund" if k == HEADER_OBJECT_TYPE else v) for k, v in message.headers]
    [row] = rows_of(message)
    assert row["quarantine_reason"] == "type_mismatch"


def test_a_garbled_event_time_header_is_quarantined():
    message = message_for(stripe_fixture("charge"))
    message.headers = [(k, b"soon" if k == HEADER_EVENT_TIME else v) for k, v in message.headers]
    [row] = rows_of(message)
    assert row["quarantine_reason"] == "invalid_header"
    assert json.loads(row["headers"])[HEADER_EVENT_TIME] == "soon"


def test_a_batch_mixing_good_and_bad_messages_keeps_every_message():
    good = [message_for({**stripe_fixture("charge"), "id": f"ch_{i}"}) for i in range(5)]
    bad = [Message(value=b"nope") for _ in range(3)]
    batch = transform_batch(kafka_batch(good[:2] + bad + good[2:]))
    assert batch.schema == OUTPUT_SCHEMA
    reasons = batch.column("quarantine_reason").to_pylist()
    assert reasons.count(None) == 5 and reasons.count("invalid_json") == 3


def test_rejections_say_what_was_wrong():
    with pytest.raises(Rejected) as rejection:
        parse_message(b"{}", {}, None)
    assert rejection.value.reason == "unknown_object_type"
    assert "expected one of charge, refund, dispute" in rejection.value.detail


def with_header(message: Message, name: str, value: bytes | None) -> Message:
    message.headers = [(k, v) for k, v in message.headers if k != name] + [(name, value)]
    return message


def test_a_header_without_a_value_is_quarantined_not_a_crash():
    # Regression: kafka-python refuses null header values, but other clients send them; the transform
    # decoded the source header's None and raised, so the batch failed on every retry.
    [row] = rows_of(with_header(message_for(stripe_fixture("charge")), HEADER_SOURCE, None))
    assert (row["quarantine_reason"], row["quarantine_detail"]) == (
        "invalid_header",
        f"header {HEADER_SOURCE} has no value (null)",
    )
    assert json.loads(row["headers"])[HEADER_SOURCE] is None


def test_a_nul_byte_in_a_header_is_kept_out_of_the_jsonb_column():
    # Regression: the quarantined message's headers went to a jsonb column, which refuses \u0000.
    [row] = rows_of(with_header(message_for(stripe_fixture("charge")), HEADER_OBJECT_TYPE, b"char\x00ge"))
    assert row["quarantine_reason"] == "type_mismatch"
    assert "\x00" not in row["headers"] and "\\u0000" not in row["headers"]


def test_a_version_stamped_in_the_future_is_quarantined_so_it_cannot_freeze_its_object():
    now = datetime(2026, 12, 1, tzinfo=UTC)
    future = message_for(stripe_fixture("charge"), event_time_ms=int((now + timedelta(days=365)).timestamp() * 1000))
    slightly_ahead = message_for(
        stripe_fixture("charge"), event_time_ms=int((now + timedelta(minutes=5)).timestamp() * 1000)
    )
    rows = transform_batch(kafka_batch([future, slightly_ahead]), now=now).to_pylist()
    assert rows[0]["quarantine_reason"] == "event_time_in_future"
    assert rows[1]["quarantine_reason"] is None  # within the tolerance for producers' clock skew
    assert timedelta(minutes=15) == EVENT_TIME_FUTURE_TOLERANCE


def test_the_stripe_api_version_is_recorded_when_the_producer_knows_it():
    charge = stripe_fixture("charge")
    known = Message(
        value=json.dumps(charge).encode(),
        key=b"k",
        headers=message_headers("charge", "stripe", 1_760_000_000_000, "2025-03-31.basil"),
    )
    [with_version, without] = rows_of(known, message_for(charge))
    assert (with_version["api_version"], without["api_version"]) == ("2025-03-31.basil", None)
    [garbled] = rows_of(with_header(message_for(charge), HEADER_API_VERSION, b"2025 03 31; drop table"))
    assert garbled["quarantine_reason"] == "invalid_header"


def test_a_broker_timestamp_no_database_can_hold_is_dropped_not_fatal():
    charge = stripe_fixture("charge")
    batch = kafka_batch([message_for(charge)])
    micros = pa.array([-(2**62)], pa.int64()).cast(batch.schema.field("timestamp").type)
    hostile = batch.set_column(batch.schema.get_field_index("timestamp"), "timestamp", micros)
    [row] = transform_batch(hostile).to_pylist()
    assert row["quarantine_reason"] is None and row["kafka_timestamp"] is None


# Fields dbt's staging models type (jsonb_to_record columns, casts): a value PostgreSQL cannot cast would
# fail every build of the marts, so the stream quarantines the object instead of landing it.
@pytest.mark.parametrize(
    ("object_name", "change", "reason", "detail"),
    [
        ("charge", {"status": None}, "missing_field", "charge has no 'status'"),
        ("dispute", {"status": None}, "missing_field", "dispute has no 'status'"),
        ("charge", {"amount_captured": 10.5}, "wrong_type", "'amount_captured' must be an integer"),
        ("charge", {"amount_captured": -1}, "invalid_value", "'amount_captured'"),
        ("charge", {"amount_refunded": 2**63}, "invalid_value", "'amount_refunded'"),
        ("charge", {"paid": "yes"}, "wrong_type", "'paid' must be a boolean"),
        ("charge", {"captured": 1}, "wrong_type", "'captured' must be a boolean"),
        ("charge", {"outcome": "authorized"}, "wrong_type", "'outcome' must be an object"),
        ("charge", {"outcome": {"risk_score": 5_000_000_000}}, "invalid_value", "'outcome.risk_score'"),
        ("charge", {"outcome": {"risk_score": "high"}}, "wrong_type", "'outcome.risk_score'"),
        ("charge", {"payment_method_details": {"card": ["visa"]}}, "wrong_type", "'payment_method_details.card'"),
        ("charge", {"billing_details": 7}, "wrong_type", "'billing_details' must be an object"),
        ("dispute", {"is_charge_refundable": "no"}, "wrong_type", "'is_charge_refundable'"),
        ("dispute", {"evidence_details": {"due_by": "soon"}}, "wrong_type", "'evidence_details.due_by'"),
        ("dispute", {"evidence_details": {"due_by": 10**14}}, "invalid_value", "'evidence_details.due_by'"),
    ],
)
def test_a_field_the_marts_type_that_postgresql_cannot_cast_is_quarantined(object_name, change, reason, detail):
    obj = {**stripe_fixture(object_name), **change}
    obj = {k: v for k, v in obj.items() if v is not None}
    [row] = rows_of(message_for(obj))
    assert row["quarantine_reason"] == reason
    assert detail in row["quarantine_detail"]


def test_stripe_objects_with_nulls_and_unknown_values_the_marts_can_flag_still_land():
    # Legitimate Stripe objects txstream cannot fully use yet: the marts keep them, flagged.
    refund_without_status = {**stripe_fixture("refund"), "status": None}
    new_charge_status = {**stripe_fixture("charge"), "status": "requires_review"}
    currency_not_in_the_seed = {**stripe_fixture("charge"), "currency": "xts"}
    no_outcome = {**stripe_fixture("charge"), "outcome": None, "payment_method_details": None}
    rows = rows_of(
        *(message_for(o) for o in (refund_without_status, new_charge_status, currency_not_in_the_seed, no_outcome))
    )
    assert [row["quarantine_reason"] for row in rows] == [None, None, None, None]
    assert [row["status"] for row in rows[:2]] == [None, "requires_review"]


# --- balance transactions and payouts --------------------------------------------------------


def test_stripes_balance_transaction_and_payout_become_typed_rows():
    bt, payout = stripe_fixture("balance_transaction"), stripe_fixture("payout")
    refund_bt = {**bt, "id": "txn_refund", "amount": -2_500, "net": -2_500, "type": "refund", "source": "re_1"}
    rows = rows_of(message_for(bt), message_for(refund_bt), message_for(payout))
    assert [r["quarantine_reason"] for r in rows] == [None, None, None]
    assert [(r["object_id"], r["object_type"], r["amount"], r["currency"], r["status"]) for r in rows] == [
        (bt["id"], "balance_transaction", 100, "usd", "available"),
        ("txn_refund", "balance_transaction", -2_500, "usd", "available"),
        (payout["id"], "payout", 1_100, "usd", "in_transit"),
    ]
    # A balance transaction belongs to no charge or customer of its own, and carries no livemode.
    assert [(r["charge_id"], r["customer_id"], r["livemode"]) for r in rows] == [
        (None, None, None),
        (None, None, None),
        (None, None, False),
    ]


def test_a_balance_transaction_listed_under_a_payout_records_the_payout():
    bt = stripe_fixture("balance_transaction")
    message = message_for(bt)
    message.headers = message_headers("balance_transaction", "stripe", 1_700_000_000_000, None, "po_1")
    [row] = rows_of(message)
    assert (row["quarantine_reason"], row["payout_id"]) == (None, "po_1")


@pytest.mark.parametrize(
    ("object_name", "header", "detail"),
    [
        ("charge", b"po_1", "only balance transactions are paid out"),
        ("balance_transaction", b"ch_1", "is not a payout id"),
    ],
)
def test_a_payout_header_where_it_cannot_be_is_quarantined(object_name, header, detail):
    [row] = rows_of(with_header(message_for(stripe_fixture(object_name)), HEADER_PAYOUT, header))
    assert row["quarantine_reason"] == "invalid_header"
    assert detail in row["quarantine_detail"]


@pytest.mark.parametrize(
    ("object_name", "change", "reason", "detail"),
    [
        ("charge", {"amount": -100}, "invalid_value", "'amount' is negative"),
        ("payout", {"amount": -100}, "invalid_value", "'amount' is negative"),
        ("balance_transaction", {"fee": "0.30"}, "wrong_type", "'fee' must be an integer"),
        ("balance_transaction", {"net": 1.5}, "wrong_type", "'net' must be an integer"),
        ("balance_transaction", {"exchange_rate": "0.79"}, "wrong_type", "'exchange_rate' must be a number"),
        ("balance_transaction", {"exchange_rate": 0}, "invalid_value", "'exchange_rate'"),
        ("balance_transaction", {"available_on": "tomorrow"}, "wrong_type", "'available_on'"),
        ("balance_transaction", {"fee_details": {"amount": 1}}, "wrong_type", "'fee_details' must be a list"),
        (
            "balance_transaction",
            {"fee_details": [{"amount": 30, "currency": "GBP"}]},
            "invalid_value",
            "'fee_details[0].currency'",
        ),
        ("balance_transaction", {"fee_details": [{"amount": None}]}, "wrong_type", "'fee_details[0].amount'"),
        ("payout", {"arrival_date": 1.5}, "wrong_type", "'arrival_date'"),
        ("payout", {"automatic": "true"}, "wrong_type", "'automatic' must be a boolean"),
        ("payout", {"livemode": None}, "missing_field", "payout has no 'livemode'"),
    ],
)
def test_balance_and_payout_fields_the_marts_type_are_checked(object_name, change, reason, detail):
    obj = {**stripe_fixture(object_name), **change}
    obj = {k: v for k, v in obj.items() if v is not None}
    [row] = rows_of(message_for(obj))
    assert row["quarantine_reason"] == reason
    assert detail in row["quarantine_detail"]
