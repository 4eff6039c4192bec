"""Land Stripe objects in raw.transactions through the stream's own transform and sink, without Spark.

Spark only moves the batches; what a row becomes is decided by
`txstream_spark.transform` and `txstream_spark.sink`, which these helpers call
directly. Tests of what lies downstream (dbt, dashboards) use this to load
data in milliseconds; tests of the Spark job itself run the real job.
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime, timezone

import orjson
import pyarrow as pa

from txstream_dagster.resources import PostgresResource
from txstream_spark.event_contract import message_headers
from txstream_spark.sink import BatchResult, write_batch
from txstream_spark.transform import KAFKA_MESSAGE_SCHEMA, transform_batch

_offsets = itertools.count()


@dataclass
class Message:
    value: bytes | None
    key: bytes | None = None
    headers: list[tuple[str, bytes]] = field(default_factory=list)
    partition: int = 0
    offset: int | None = None
    timestamp: datetime = field(default_factory=lambda: datetime.now(timezone.utc))


def message_for(obj: dict, source: str = "synthetic", event_time_ms: int | None = None, **kwargs) -> Message:
    """The message a producer following the event contract sends for `obj`."""
    event_time_ms = event_time_ms if event_time_ms is not None else int(datetime.now(timezone.utc).timestamp() * 1000)
    return Message(
        value=orjson.dumps(obj),
        key=obj["id"].encode(),
        headers=message_headers(obj["object"], source, event_time_ms),
        **kwargs,
    )


def kafka_batch(messages: Iterable[Message], topic: str = "stripe.events") -> pa.RecordBatch:
    """What Spark's Kafka source hands the transform for these messages."""
    rows = []
    for message in messages:
        rows.append(
            {
                "key": message.key,
                "value": message.value,
                "topic": topic,
                "partition": message.partition,
                "offset": message.offset if message.offset is not None else next(_offsets),
                "timestamp": message.timestamp,
                "timestampType": 0,
                "headers": [{"key": k, "value": v} for k, v in message.headers],
            }
        )
    return pa.RecordBatch.from_pylist(rows, schema=KAFKA_MESSAGE_SCHEMA)


def land_messages(postgres: PostgresResource, messages: Iterable[Message], topic: str = "stripe.events",
                  topic_id: str = "test-topic") -> BatchResult:
    table = pa.Table.from_batches([transform_batch(kafka_batch(messages, topic), topic_id)])
    with postgres.connect() as conn:
        return write_batch(conn, table)


def land_objects(postgres: PostgresResource, objects: Iterable[dict], source: str = "synthetic") -> BatchResult:
    """Land Stripe objects as one micro-batch; each later object is a later version."""
    base_ms = int(datetime.now(timezone.utc).timestamp() * 1000)
    return land_messages(postgres, [message_for(o, source, base_ms + i) for i, o in enumerate(objects)])


def wait_for(condition, timeout: float, what: str):
    """Poll `condition` until it returns something truthy (returned), or fail naming `what`."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.2)
    raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")


def batch_totals(postgres: PostgresResource) -> tuple[int, int, int, int]:
    """Over every batch in ops.stream_batches: consumed, inserted+updated+duplicates+quarantined,
    inserted and duplicates."""
    return postgres.fetch_one(
        "SELECT sum(consumed), sum(inserted + updated + duplicates + quarantined), sum(inserted), sum(duplicates) "
        "FROM ops.stream_batches"
    )
