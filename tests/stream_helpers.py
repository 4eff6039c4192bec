"""Helpers for tests of the stream: land objects without Spark, or run the real Spark job and judge what it did.

Spark only moves the batches; what a row becomes is decided by
`txstream_spark.transform` and `txstream_spark.sink`, which `land_messages` and
`land_objects` call directly: tests of what lies downstream (dbt, dashboards)
load data in milliseconds that way. Tests of the job itself start it with
`start_stream_job` and check the accounting with the rest.
"""

from __future__ import annotations

import itertools
import os
import signal
import subprocess
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime

import orjson
import psycopg
import pyarrow as pa

from resource_helpers import spark_resource
from stripe_helpers import stripe_fixture
from txstream_dagster.defs.stream.checks import every_message_is_accounted_for
from txstream_dagster.defs.stream.offsets import committed_offsets
from txstream_dagster.defs.stream.resources import SparkResource
from txstream_dagster.defs.stripe_source.publisher import encode
from txstream_dagster.defs.stripe_source.synthetic_charges import SyntheticStripe
from txstream_dagster.resources import KafkaResource, PostgresResource
from txstream_spark.event_contract import message_headers
from txstream_spark.sink import (
    BatchResult,
    WriterLost,
    apply_staged,
    claim_writer_lock,
    copy_to_staging,
    drop_staging,
    new_writer_id,
    prepare_staging,
    staging_table,
)
from txstream_spark.transform import KAFKA_MESSAGE_SCHEMA, transform_batch

_offsets = itertools.count()


@dataclass
class Message:
    value: bytes | None
    key: bytes | None = None
    headers: list[tuple[str, bytes]] = field(default_factory=list)
    partition: int = 0
    offset: int | None = None
    timestamp: datetime = field(default_factory=lambda: datetime.now(UTC))


def message_for(obj: dict, source: str = "synthetic", event_time_ms: int | None = None, **kwargs) -> Message:
    """The message a producer following the event contract sends for `obj`."""
    event_time_ms = event_time_ms if event_time_ms is not None else int(datetime.now(UTC).timestamp() * 1000)
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


def write_batch(conn: psycopg.Connection, table: pa.Table, spark_batch_id: int | None = None) -> BatchResult:
    """Stage and apply an already transformed batch from this process, with the sink's own steps, as the
    topic's writer for the connection's lifetime (what a stream query's tasks and driver do, without Spark)."""
    if table.num_rows == 0:
        return BatchResult()
    started_at = datetime.now(UTC)
    topic = table.column("kafka_topic")[0].as_py()
    writer = new_writer_id()
    if not claim_writer_lock(conn, topic, writer):
        raise WriterLost(f"a stream query is writing topic {topic!r}")
    staging = staging_table(topic, writer)
    prepare_staging(conn, staging)
    copy_to_staging(conn, staging, spark_batch_id or 0, table.to_batches())
    try:
        return apply_staged(conn, topic, staging, spark_batch_id, started_at)
    finally:
        drop_staging(conn, staging)
        conn.commit()


def land_messages(
    postgres: PostgresResource,
    messages: Iterable[Message],
    topic: str = "stripe.events",
    topic_id: str = "test-topic",
    conn=None,
) -> BatchResult:
    """One micro-batch through the stream's transform and sink (as the topic's writer), on `conn` if given."""
    table = pa.Table.from_batches([transform_batch(kafka_batch(messages, topic), topic_id)])
    if conn is not None:
        return write_batch(conn, table)
    with postgres.connect() as own:
        return write_batch(own, table)


def land_objects(postgres: PostgresResource, objects: Iterable[dict], source: str = "synthetic") -> BatchResult:
    """Land Stripe objects as one micro-batch; each later object is a later version."""
    base_ms = int(datetime.now(UTC).timestamp() * 1000)
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


# The job's other arguments, as the Spark resource passes them (the job has no defaults of its own).
JOB_SETTINGS = [
    "--trigger",
    "available-now",
    "--interval",
    "1 second",
    "--starting-offsets",
    "earliest",
    "--max-offsets-per-trigger",
    "100",
    "--fail-on-data-loss",
    "true",
]


def start_stream_job(
    spark: SparkResource,
    kafka: KafkaResource,
    postgres: PostgresResource,
    trigger: str,
    interval: str = "200 milliseconds",
) -> subprocess.Popen:
    """The real Spark job, submitted as Dagster and `txstream stream` submit it, in a process group of its own."""
    command = spark.submit_command(bootstrap=kafka.bootstrap, topic=kafka.topic, trigger=trigger, interval=interval)
    return subprocess.Popen(
        command,
        env={**os.environ, **spark.job_env(postgres)},
        start_new_session=True,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def publish_charges(kafka: KafkaResource, count: int, prefix: str = "ch_job_", malformed: list[bytes] = ()) -> set[str]:
    """`count` charges (Stripe's example with ids `<prefix><n>`), then the `malformed` values; their ids."""
    producer = kafka.producer()
    charge = stripe_fixture("charge")
    ids = set()
    for i in range(count):
        obj = {**charge, "id": f"{prefix}{i}", "amount": 100 + i}
        ids.add(obj["id"])
        producer.send(
            kafka.topic,
            key=obj["id"].encode(),
            value=orjson.dumps(obj),
            headers=message_headers("charge", "synthetic", 1_700_000_000_000 + i),
        )
    for value in malformed:
        producer.send(kafka.topic, key=b"bad", value=value)
    producer.flush()
    producer.close()
    return ids


def landed_ids(postgres: PostgresResource) -> list[str]:
    return [i for (i,) in postgres.fetch_all("SELECT object_id FROM raw.transactions ORDER BY 1")]


def stop_stream(stream: subprocess.Popen) -> str:
    """SIGTERM the job's process group; its output (printed, so a failing test shows it)."""
    if stream.poll() is None:
        os.killpg(stream.pid, signal.SIGTERM)
    return output_of(stream)


def output_of(job_process: subprocess.Popen, timeout: float = 300) -> str:
    """The job's output once it has ended by itself (printed, so a failing test shows it)."""
    output, _ = job_process.communicate(timeout=timeout)
    print(output[-6000:])
    return output


def caught_up(postgres: PostgresResource, kafka: KafkaResource) -> bool:
    return committed_offsets(postgres, kafka.topic).total >= sum(kafka.end_offsets().values())


def assert_every_message_accounted_for_once(postgres: PostgresResource, objects: int) -> None:
    """For streams where every object was published exactly once: each landed once, no batch applied twice."""
    consumed, accounted, inserted, duplicates = batch_totals(postgres)
    assert consumed == accounted
    assert inserted == objects  # each object inserted once, by exactly one batch
    assert duplicates == 0  # no message was applied twice (a replayed batch is not recorded again)
    check = every_message_is_accounted_for(postgres=postgres, spark=spark_resource())
    assert check.passed, check.description  # offset ranges contiguous, none applied twice


class SyntheticStream:
    """A synthetic Stripe stream published from a thread at `rate` events/s while a test breaks things;
    `finish()` stops it and returns what Kafka acknowledged."""

    def __init__(self, kafka: KafkaResource, seed: int, rate: float):
        from txstream_dagster.defs.stripe_source.topic_feeds import publish_synthetic

        self.kafka, self.seed, self.rate = kafka, seed, rate
        self.now_ms = int(time.time() * 1000)
        self.stop = threading.Event()
        self.produced: dict = {}
        self.thread = threading.Thread(
            target=lambda: self.produced.update(
                summary=publish_synthetic(kafka, seed=seed, rate=rate, stop=self.stop, now_ms=self.now_ms)
            )
        )
        self.thread.start()

    def finish(self, timeout: float = 180):
        self.stop.set()
        self.thread.join(timeout)
        assert not self.thread.is_alive(), "the producer did not finish"
        return self.produced["summary"]

    def latest_versions(self, messages: int) -> dict[str, dict]:
        """Object id → the payload of its last version, among the first `messages` of the stream."""
        latest = {}
        for version in itertools.islice(SyntheticStripe(self.seed).stream(self.now_ms, self.rate), messages):
            message = encode(version, "synthetic")
            latest[message.key.decode()] = orjson.loads(message.value)
        return latest


def assert_landed_exactly_once(postgres: PostgresResource, kafka: KafkaResource, stream: SyntheticStream) -> None:
    """Every message Kafka acknowledged is in the topic once, and its object in raw.transactions once, at its
    latest version; every message consumed once; the offset ranges contiguous and none applied twice."""
    published = stream.produced["summary"].messages
    assert sum(kafka.end_offsets().values()) == published  # acks=all + idempotence: nothing twice in the topic
    latest = stream.latest_versions(published)
    held = dict(postgres.fetch_all("SELECT object_id, payload FROM raw.transactions"))
    assert held == latest  # nothing acknowledged is lost, nothing else appears, each at its last version
    consumed, accounted, inserted, _ = batch_totals(postgres)
    assert consumed == accounted == published  # every message consumed once: no batch applied twice
    assert inserted == len(latest)  # each object inserted once; its later versions updated it
    check = every_message_is_accounted_for(postgres=postgres, spark=spark_resource())
    assert check.passed, check.description
