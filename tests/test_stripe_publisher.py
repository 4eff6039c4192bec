"""Publishing to Kafka per the event contract, against real Kafka; a broker crash loses and duplicates nothing."""

from __future__ import annotations

import threading
import time
from collections import defaultdict
from itertools import islice

import orjson
import pytest

from resource_helpers import kafka_resource
from stripe_helpers import headers_of, read_topic
from txstream_dagster.defs.stripe_source.object_versions import ObjectVersion
from txstream_dagster.defs.stripe_source.publisher import DeliveryFailed, Publisher, encode
from txstream_dagster.defs.stripe_source.synthetic_charges import DAY_MS, SyntheticStripe
from txstream_dagster.dev.embedded_kafka import KafkaNode
from txstream_dagster.resources import KafkaResource
from txstream_spark.event_contract import (
    HEADER_EVENT_TIME,
    HEADER_OBJECT_TYPE,
    HEADER_SCHEMA_VERSION,
    HEADER_SOURCE,
    SCHEMA_VERSION,
)
from txstream_spark.transform import parse_message

NOW_MS = 1_780_000_000_000


def test_a_message_is_the_object_json_keyed_by_its_id_with_the_contract_headers():
    charge = {"id": "ch_1", "object": "charge", "amount": 4980, "currency": "jpy", "metadata": {"k": "ü"}}
    message = encode(ObjectVersion("charge", "ch_1", 1_700_000_000_123, charge), "synthetic")
    assert message.key == b"ch_1"
    assert orjson.loads(message.value) == charge
    assert dict(message.headers) == {
        HEADER_OBJECT_TYPE: b"charge",
        HEADER_SOURCE: b"synthetic",
        HEADER_SCHEMA_VERSION: SCHEMA_VERSION.encode(),
        HEADER_EVENT_TIME: b"1700000000123",
    }


def test_an_object_over_the_contracts_size_limit_is_refused_by_name():
    huge = {"id": "ch_big", "description": "x" * 2_000_000}
    with pytest.raises(ValueError, match="ch_big"):
        encode(ObjectVersion("charge", "ch_big", 1, huge), "stripe")


def test_published_history_reads_back_complete_with_every_version_in_order_on_one_partition(kafka: KafkaResource):
    versions = list(SyntheticStripe(seed=21).history(NOW_MS - 3 * DAY_MS, NOW_MS, charges=6_000))
    producer = kafka.producer()
    report = Publisher(producer, kafka.topic, "synthetic", chunk_size=1_000).publish(versions)
    producer.close()

    records = read_topic(kafka)
    assert report.messages == len(versions) == len(records)
    assert report.by_object_type["refund"] > 0 and report.by_object_type["dispute"] > 0
    sent = {(v.object_id, v.event_time_ms): v.payload for v in versions}
    received = {(r.key.decode(), int(headers_of(r)[HEADER_EVENT_TIME])): orjson.loads(r.value) for r in records}
    assert received == sent
    partitions, event_times = defaultdict(set), defaultdict(list)
    for record in sorted(records, key=lambda r: (r.partition, r.offset)):
        partitions[record.key].add(record.partition)
        event_times[record.key].append(int(headers_of(record)[HEADER_EVENT_TIME]))
    assert all(len(p) == 1 for p in partitions.values())
    assert all(times == sorted(times) for times in event_times.values())
    assert {headers_of(r)[HEADER_SOURCE] for r in records} == {"synthetic"}


def test_delivery_that_kafka_never_acknowledges_fails_loudly_after_the_deadline(own_kafka: KafkaNode):
    kafka = kafka_resource(bootstrap=own_kafka.bootstrap, topic="test.unacknowledged")
    kafka.ensure_topic(partitions=1, replication=1)
    producer = kafka.producer(max_block_ms=500, request_timeout_ms=500, delivery_timeout_ms=1_500)
    own_kafka.stop()
    publisher = Publisher(producer, kafka.topic, "synthetic", give_up_after_s=1)
    with pytest.raises(DeliveryFailed, match="did not acknowledge 10 messages"):
        publisher.publish(islice(SyntheticStripe(1).stream(NOW_MS, 100), 10))
    producer.close(timeout=1)


@pytest.mark.slow
def test_kafka_killed_and_restarted_mid_publish_loses_and_duplicates_nothing(own_kafka: KafkaNode):
    """kill -9 of the broker while the producer is sending, restart 3 s later: the topic holds every
    message exactly once, each object's versions in order (acks=all, idempotent producer)."""
    kafka = kafka_resource(bootstrap=own_kafka.bootstrap, topic="test.outage")
    kafka.ensure_topic(partitions=2, replication=1)
    producer = kafka.producer(request_timeout_ms=3_000, reconnect_backoff_max_ms=500)
    publisher = Publisher(producer, kafka.topic, "synthetic", chunk_size=500)
    versions = list(SyntheticStripe(seed=9).history(NOW_MS - DAY_MS, NOW_MS, charges=8_000))
    result: dict = {}
    worker = threading.Thread(target=lambda: result.update(report=publisher.publish(versions)))
    worker.start()
    time.sleep(0.5)  # mid-publish: some chunks acknowledged, more in flight
    own_kafka.kill()
    time.sleep(3)
    assert worker.is_alive(), "publish returned while Kafka was down"
    own_kafka.start()
    worker.join(timeout=240)
    try:
        assert not worker.is_alive(), "publish did not finish after Kafka came back"
        assert result["report"].messages == len(versions)
        records = read_topic(kafka)
        published = [(r.key.decode(), int(headers_of(r)[HEADER_EVENT_TIME])) for r in records]
        assert sorted(published) == sorted((v.object_id, v.event_time_ms) for v in versions)  # none lost, none twice
        by_object = defaultdict(list)
        for record in sorted(records, key=lambda r: (r.partition, r.offset)):
            by_object[record.key].append(int(headers_of(record)[HEADER_EVENT_TIME]))
        assert all(times == sorted(times) for times in by_object.values())
    finally:
        producer.close(timeout=5)


def test_every_synthetic_message_is_accepted_by_the_stream_as_the_object_it_is():
    """The producer and the stream's parser share the contract: nothing synthetic lands in quarantine."""
    for version in SyntheticStripe(seed=4).history(NOW_MS - 2 * DAY_MS, NOW_MS, charges=3_000):
        message = encode(version, "synthetic")
        row = parse_message(message.value, dict(message.headers), None)
        assert (row.object_type, row.object_id, row.amount) == (
            version.object_type,
            version.object_id,
            version.payload["amount"],
        )
        assert row.event_time.timestamp() * 1000 == version.event_time_ms
