"""No input stops the stream: arbitrary bytes, headers, timestamps and JSON, property-based (hypothesis).

The transform must turn every message into a typed row or a quarantine row with a
reason, never raise; whatever it produces, the sink must be able to COPY into
PostgreSQL and apply, with every message accounted for. A message that broke either
would fail its batch on every retry and stop the stream for good.
"""

from __future__ import annotations

import itertools
import json
from datetime import UTC, datetime

import orjson
import pyarrow as pa
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from resource_helpers import spark_resource
from stream_helpers import batch_totals, landed_ids, output_of, publish_charges, start_stream_job, write_batch
from stripe_helpers import stripe_fixture
from txstream_dagster.resources import PostgresResource
from txstream_spark.event_contract import (
    HEADER_API_VERSION,
    HEADER_EVENT_TIME,
    HEADER_OBJECT_TYPE,
    HEADER_PAYOUT,
    HEADER_SCHEMA_VERSION,
    HEADER_SOURCE,
)
from txstream_spark.transform import (
    EARLIEST,
    EVENT_TIME_FUTURE_TOLERANCE,
    KAFKA_MESSAGE_SCHEMA,
    LATEST,
    MAX_AMOUNT,
    OUTPUT_SCHEMA,
    TYPED_COLUMNS,
    transform_batch,
)

NOW = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)
TOPIC = "stripe.events"
_offsets = itertools.count(10_000_000)

# --- what a hostile (or merely broken) producer can put in a message -------------------------

json_scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=40),
)
json_values = st.recursive(
    json_scalars,
    lambda children: st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=6), children, max_size=3),
    max_leaves=8,
)
hostile_text = st.one_of(
    st.text(max_size=40),
    st.sampled_from(["", "\x00", "ch_\x00", "x" * 300, "\ud7ff", "GBP", "gbp", "ch_ok"]),
)
# Stripe-shaped objects whose fields may be anything: most checks of the transform get exercised.
stripe_shaped = st.fixed_dictionaries(
    {
        "id": hostile_text,
        "object": st.sampled_from(
            ["charge", "refund", "dispute", "balance_transaction", "payout", "invoice", "", None]
        ),
        "amount": st.one_of(st.integers(min_value=-(2**70), max_value=2**70), json_values),
        "currency": hostile_text,
        "created": st.one_of(st.integers(min_value=-(2**63), max_value=2**63), json_values),
    },
    optional={
        "livemode": json_values,
        "status": hostile_text,
        "customer": st.one_of(hostile_text, json_values),
        "charge": st.one_of(hostile_text, st.fixed_dictionaries({"id": hostile_text}), json_values),
        # Balance transactions and payouts.
        "fee": st.one_of(st.integers(min_value=-(2**70), max_value=2**70), json_values),
        "net": st.one_of(st.integers(min_value=-(2**70), max_value=2**70), json_values),
        "exchange_rate": st.one_of(st.floats(), json_values),
        "available_on": st.one_of(st.integers(min_value=-(2**63), max_value=2**63), json_values),
        "fee_details": st.one_of(
            st.lists(st.fixed_dictionaries({"amount": json_values, "currency": hostile_text}), max_size=2),
            json_values,
        ),
        "arrival_date": st.one_of(st.integers(min_value=-(2**63), max_value=2**63), json_values),
        "automatic": json_values,
    },
)


def _json_bytes(value) -> bytes:
    # json, not orjson: it writes NaN, Infinity, lone surrogates and big integers, as hostile producers do.
    return json.dumps(value, allow_nan=True).encode("utf-8", "surrogatepass")


message_values = st.one_of(
    st.none(),
    st.binary(max_size=200),
    json_values.map(_json_bytes),
    stripe_shaped.map(_json_bytes),
    st.sampled_from(
        [
            b'{"id": "ch_1", "object": "charge", "amount": 1e400}',
            b'{"a": "\\u0000"}',
            b'{"a": "\\ud800"}',
            b"\xef\xbb\xbf{}",
            b"[" * 2000 + b"]" * 2000,
            b'{"id": "ch_big", "amount": 18446744073709551615}',
            orjson.dumps(stripe_fixture("charge")),
        ]
    ),
)
header_values = st.one_of(
    st.none(),
    st.binary(max_size=30),
    st.sampled_from(
        [
            b"charge",
            b"refund",
            b"balance_transaction",
            b"po_1",
            b"stripe",
            b"synthetic",
            b"1",
            b"1764590400000",
            b"99999999999999999999",
            b"-62135596800000",
            b"\x00",
            b"\xff",
            b"2024-06-20",
            b"1700000000000",
        ]
    ),
)
header_keys = st.one_of(
    st.sampled_from(
        [HEADER_OBJECT_TYPE, HEADER_SOURCE, HEADER_EVENT_TIME, HEADER_SCHEMA_VERSION, HEADER_API_VERSION, HEADER_PAYOUT]
    ),
    st.text(max_size=12),
)
messages = st.lists(
    st.fixed_dictionaries(
        {
            "key": st.one_of(st.none(), st.binary(max_size=20)),
            "value": message_values,
            "headers": st.one_of(st.none(), st.lists(st.tuples(header_keys, header_values), max_size=5)),
            # Any CreateTime a producer can set, in microseconds as Spark hands it over.
            "timestamp_us": st.integers(min_value=-(2**62), max_value=2**62),
        }
    ),
    min_size=1,
    max_size=8,
)


def hostile_batch(generated: list[dict]) -> pa.RecordBatch:
    offsets = [next(_offsets) for _ in generated]
    headers = [None if m["headers"] is None else [{"key": k, "value": v} for k, v in m["headers"]] for m in generated]
    return pa.RecordBatch.from_arrays(
        [
            pa.array([m["key"] for m in generated], pa.binary()),
            pa.array([m["value"] for m in generated], pa.binary()),
            pa.array([TOPIC] * len(generated), pa.string()),
            pa.array([0] * len(generated), pa.int32()),
            pa.array(offsets, pa.int64()),
            pa.array([m["timestamp_us"] for m in generated], pa.int64()).cast(
                KAFKA_MESSAGE_SCHEMA.field("timestamp").type
            ),
            pa.array([0] * len(generated), pa.int32()),
            pa.array(headers, KAFKA_MESSAGE_SCHEMA.field("headers").type),
        ],
        schema=KAFKA_MESSAGE_SCHEMA,
    )


# --- properties ------------------------------------------------------------------------------


@settings(max_examples=400, deadline=None)
@given(messages)
def test_every_message_becomes_a_row_or_a_quarantine_row_and_the_transform_never_raises(generated):
    out = transform_batch(hostile_batch(generated), "topic-id", now=NOW)

    assert out.schema == OUTPUT_SCHEMA and out.num_rows == len(generated)
    for row in out.to_pylist():
        if row["quarantine_reason"] is None:
            assert all(
                row[name] is not None
                for name in (
                    "object_id",
                    "object_type",
                    "amount",
                    "currency",
                    "created_at",
                    "event_time",
                    "payload",
                    "source",
                )
            )
            assert -MAX_AMOUNT <= row["amount"] <= MAX_AMOUNT
            assert row["amount"] >= 0 or row["object_type"] == "balance_transaction"  # raw's CHECK
            assert row["payout_id"] is None or row["object_type"] == "balance_transaction"
            assert row["event_time"] <= NOW + EVENT_TIME_FUTURE_TOLERANCE
            assert (row["raw_value"], row["headers"]) == (None, None)
        else:
            assert row["quarantine_detail"] and all(row[name] is None for name in TYPED_COLUMNS)
        for text in (
            row[name]
            for name, kind in zip(OUTPUT_SCHEMA.names, OUTPUT_SCHEMA.types, strict=False)
            if kind == pa.string()
        ):
            assert text is None or "\x00" not in text  # PostgreSQL's text and jsonb refuse NUL
        assert row["kafka_timestamp"] is None or EARLIEST <= row["kafka_timestamp"] < LATEST


@pytest.fixture
def warehouse(clean_warehouse: PostgresResource) -> PostgresResource:
    return clean_warehouse


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(messages)
def test_whatever_the_transform_produces_the_sink_lands_and_accounts_for(warehouse: PostgresResource, generated):
    out = pa.Table.from_batches([transform_batch(hostile_batch(generated), "topic-id", now=NOW)])

    with warehouse.connect() as conn:
        result = write_batch(conn, out)

    assert result.consumed == len(generated)
    assert result.consumed == result.inserted + result.updated + result.duplicates + result.quarantined
    assert result.quarantined == sum(reason is not None for reason in out.column("quarantine_reason").to_pylist())


# --- end to end: hostile messages through Kafka and the Spark job -----------------------------

HOSTILE_MESSAGES = [
    # (key, value, headers, the reason the stream must give, or None when it must land)
    (
        b"ch_ok",
        orjson.dumps({**stripe_fixture("charge"), "id": "ch_ok"}),
        [(HEADER_OBJECT_TYPE, b"charge"), (HEADER_SOURCE, b"synthetic")],
        None,
    ),
    (
        b"null-header",
        orjson.dumps({**stripe_fixture("charge"), "id": "ch_null_header"}),
        [(HEADER_SOURCE, None)],
        "invalid_header",
    ),
    (
        b"nul-header",
        orjson.dumps({**stripe_fixture("charge"), "id": "ch_nul_header"}),
        [(HEADER_OBJECT_TYPE, b"char\x00ge")],
        "type_mismatch",
    ),
    (
        b"huge",
        b'{"id": "ch_huge", "object": "charge", "amount": 18446744073709551615, "currency": "gbp", '
        b'"created": 1760000000, "livemode": false}',
        [],
        "invalid_value",
    ),
    (b"long-id", orjson.dumps({**stripe_fixture("charge"), "id": "ch_" + "x" * 5000}), [], "invalid_value"),
    (
        b"future",
        orjson.dumps({**stripe_fixture("charge"), "id": "ch_future"}),
        [(HEADER_EVENT_TIME, b"4102444800000")],
        "event_time_in_future",
    ),
    (b"surrogate", b'{"id": "ch_s", "object": "charge", "note": "\\ud800"}', [], "invalid_json"),
    (b"nul-json", b'{"id": "ch_n", "object": "charge", "note": "\\u0000"}', [], "unsupported_json"),
    (None, None, [(HEADER_OBJECT_TYPE, None)], "empty_value"),
    (b"bytes", bytes(range(256)), [("\x00key", b"\xff\xfe")], "invalid_utf8"),
]


@pytest.mark.slow
def test_hostile_messages_through_kafka_and_spark_are_each_quarantined_and_the_stream_goes_on(
    clean_warehouse: PostgresResource, kafka, spark_session, tmp_path
):
    # Written with Spark's own Kafka sink: kafka-python refuses null header values, other clients do not.
    rows = [(key, value, [{"key": k, "value": v} for k, v in headers]) for key, value, headers, _ in HOSTILE_MESSAGES]
    (
        spark_session.createDataFrame(rows, "key binary, value binary, headers array<struct<key:string,value:binary>>")
        .write.format("kafka")
        .option("kafka.bootstrap.servers", kafka.bootstrap)
        .option("topic", kafka.topic)
        .save()
    )
    spark = spark_resource(master="local[2]", checkpoint_root=str(tmp_path / "checkpoints"))

    stream = start_stream_job(spark, kafka, clean_warehouse, "available-now")
    output = output_of(stream)

    assert stream.returncode == 0, output
    assert landed_ids(clean_warehouse) == ["ch_ok"]
    quarantined = sorted(reason for (reason,) in clean_warehouse.fetch_all("SELECT reason FROM raw.quarantined_events"))
    assert quarantined == sorted(reason for *_, reason in HOSTILE_MESSAGES if reason)
    consumed, accounted, _, _ = batch_totals(clean_warehouse)
    assert consumed == accounted == len(HOSTILE_MESSAGES)
    # …and the stream still takes what comes next.
    publish_charges(kafka, 5, prefix="ch_after_")
    again = start_stream_job(spark, kafka, clean_warehouse, "available-now")
    output = output_of(again)
    assert again.returncode == 0, output
    assert len(landed_ids(clean_warehouse)) == 6
