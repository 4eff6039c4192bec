"""`every_message_is_accounted_for` against real PostgreSQL: batches landed by the sink, then tampered with.

The sink writes a batch's counts and its offset ranges in one transaction, so
the counts alone always agree; only the ranges show messages that never
arrived. These tests forge the `ops.stream_batches` rows a lossy stream would
leave and expect the check to notice.
"""

from __future__ import annotations

import uuid

import dagster as dg
import orjson
import pytest

from resource_helpers import spark_resource
from stream_helpers import land_messages, message_for
from stripe_helpers import stripe_fixture
from txstream_dagster.defs.stream.checks import every_message_is_accounted_for
from txstream_dagster.resources import PostgresResource

TOPIC = "stripe.events"  # what stream_helpers.kafka_batch stamps on every message


@pytest.fixture
def fail_on_data_loss(monkeypatch):
    """Set TXSTREAM_STREAM_FAIL_ON_DATA_LOSS for one test."""

    def set_to(value: bool) -> None:
        monkeypatch.setenv("TXSTREAM_STREAM_FAIL_ON_DATA_LOSS", str(value).lower())

    yield set_to


def land_offsets(postgres: PostgresResource, offsets: range, partition: int = 0, topic_id: str = "test-topic"):
    """One batch, as the sink lands it, of a charge per offset."""
    messages = [
        message_for(
            {**stripe_fixture("charge"), "id": f"ch_{topic_id}_{partition}_{offset}"},
            partition=partition,
            offset=offset,
        )
        for offset in offsets
    ]
    return land_messages(postgres, messages, topic_id=topic_id)


def record_forged_batch(postgres: PostgresResource, offsets: range, *, partition: int = 0, inserted: int = 0) -> None:
    """An ops.stream_batches row shaped like the sink's, whose messages (if not `inserted`) were all duplicates."""
    consumed = len(offsets)
    ranges = [
        {
            "topic": TOPIC,
            "topic_id": "test-topic",
            "partition": partition,
            "from": offsets.start,
            "to": offsets.stop - 1,
            "count": consumed,
        }
    ]
    with postgres.connect() as conn:
        conn.execute(
            """INSERT INTO ops.stream_batches (range_key, kafka_topic, kafka_topic_id, offset_ranges, consumed,
                   inserted, updated, duplicates, quarantined, started_at)
               VALUES (%s, %s, 'test-topic', %s, %s, %s, 0, %s, 0, now())""",
            [uuid.uuid4().hex, TOPIC, orjson.dumps(ranges).decode(), consumed, inserted, consumed - inserted],
        )


def run_check(postgres: PostgresResource) -> dg.AssetCheckResult:
    return every_message_is_accounted_for(postgres=postgres, spark=spark_resource())


def test_consecutive_batches_and_a_recreated_topic_starting_over_pass(
    clean_warehouse: PostgresResource, fail_on_data_loss
):
    fail_on_data_loss(True)
    land_offsets(clean_warehouse, range(0, 5))
    land_offsets(clean_warehouse, range(5, 10))
    land_offsets(clean_warehouse, range(0, 3), partition=1)
    # The topic was recreated (a new incarnation id): its offsets start again at 0, which is no overlap,
    # and the old incarnation's unread tail is no gap.
    land_offsets(clean_warehouse, range(0, 4), topic_id="recreated")

    result = run_check(clean_warehouse)

    assert result.passed, result.description
    assert result.metadata["offsets_in_ranges"].value == result.metadata["consumed"].value == 17
    assert result.metadata["gaps"].value == 0


def test_a_gap_between_consecutive_batches_fails_the_check(clean_warehouse: PostgresResource, fail_on_data_loss):
    # Regression: gaps were computed but never failed the check; offsets 5-9 were never read.
    fail_on_data_loss(True)
    land_offsets(clean_warehouse, range(0, 5))
    record_forged_batch(clean_warehouse, range(10, 15))

    result = run_check(clean_warehouse)

    assert not result.passed
    assert result.severity == dg.AssetCheckSeverity.ERROR
    assert (result.metadata["gaps"].value, result.metadata["offsets_in_gaps"].value) == (1, 5)
    assert "5 offsets never read" in result.description


def test_a_batch_whose_ranges_span_offsets_it_never_consumed_fails_the_check(
    clean_warehouse: PostgresResource, fail_on_data_loss
):
    # Regression: the check compared `consumed` with the staged row count, written by the same transaction.
    fail_on_data_loss(True)
    land_offsets(clean_warehouse, range(0, 5))
    with clean_warehouse.connect() as conn:
        conn.execute("UPDATE ops.stream_batches SET offset_ranges = jsonb_set(offset_ranges, '{0,to}', '7')")

    result = run_check(clean_warehouse)

    assert not result.passed
    assert result.severity == dg.AssetCheckSeverity.ERROR
    assert (result.metadata["offsets_in_ranges"].value, result.metadata["consumed"].value) == (8, 5)
    assert "3 never landed" in result.description


def test_skipped_offsets_only_warn_when_the_stream_tolerates_data_loss(
    clean_warehouse: PostgresResource, fail_on_data_loss
):
    fail_on_data_loss(False)  # an operator chose to skip what retention deleted before the stream read it
    land_offsets(clean_warehouse, range(0, 5))
    record_forged_batch(clean_warehouse, range(10, 15))

    result = run_check(clean_warehouse)

    assert not result.passed
    assert result.severity == dg.AssetCheckSeverity.WARN
    assert "failOnDataLoss=false" in result.description


def test_a_miscount_is_an_error_even_when_the_stream_tolerates_data_loss(
    clean_warehouse: PostgresResource, fail_on_data_loss
):
    fail_on_data_loss(False)
    land_offsets(clean_warehouse, range(0, 5))
    record_forged_batch(clean_warehouse, range(10, 15), inserted=5)  # rows raw.transactions does not hold

    result = run_check(clean_warehouse)

    assert not result.passed
    assert result.severity == dg.AssetCheckSeverity.ERROR
    assert "raw.transactions holds 5 rows but batches inserted 10" in result.description
