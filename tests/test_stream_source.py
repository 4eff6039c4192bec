"""Spark's own Kafka source as the job opens it: real Spark, the connector `make install` resolved, real Kafka."""

from __future__ import annotations

import os
import subprocess

import orjson
import pyarrow as pa
import pytest

from resource_helpers import spark_resource, with_fields
from txstream_dagster.resources import KafkaResource, PostgresResource
from txstream_spark import main as job
from txstream_spark.event_contract import message_headers
from txstream_spark.source import read_kafka_stream
from txstream_spark.transform import KAFKA_MESSAGE_SCHEMA, transform_batch

pytestmark = pytest.mark.slow


def read_topic_with_spark(spark, kafka: KafkaResource) -> pa.Table:
    """Everything in the topic, through the same connector and options the job's stream uses (as a batch read)."""
    return (
        spark.read.format("kafka")
        .option("kafka.bootstrap.servers", kafka.bootstrap)
        .option("subscribe", kafka.topic)
        .option("includeHeaders", "true")
        .load()
        .toArrow()
    )


def test_the_connector_hands_the_transform_exactly_the_columns_it_reads(spark_session, kafka: KafkaResource):
    charge = {
        "id": "ch_src",
        "object": "charge",
        "amount": 1999,
        "currency": "gbp",
        "created": 1_760_000_000,
        "livemode": False,
        "status": "succeeded",
    }
    producer = kafka.producer()
    producer.send(
        kafka.topic,
        key=b"ch_src",
        value=orjson.dumps(charge),
        headers=message_headers("charge", "synthetic", 1_760_000_000_123),
    ).get(timeout=10)
    producer.close()

    table = read_topic_with_spark(spark_session, kafka)

    assert table.schema.remove_metadata() == KAFKA_MESSAGE_SCHEMA  # the contract between Spark and transform.py
    [row] = transform_batch(table.to_batches()[0], "topic-id").to_pylist()
    assert (row["object_id"], row["amount"], row["quarantine_reason"]) == ("ch_src", 1999, None)
    assert (row["kafka_topic"], row["kafka_topic_id"], row["source"]) == (kafka.topic, "topic-id", "synthetic")
    assert row["event_time"].timestamp() == 1_760_000_000.123


@pytest.mark.parametrize("codec", ["gzip", "snappy", "lz4", "zstd"])
def test_compressed_messages_reach_the_stream_unchanged(codec, spark_session, kafka: KafkaResource):
    # The producer compresses with kafka-python's codec extras; Spark's connector (kafka-clients) decodes.
    producer = with_fields(kafka, compression=codec).producer()
    assert producer.config["compression_type"] == codec
    sent = {
        (f"ch_{n}".encode(), b'{"id": "ch_%d", "amount": 1000}' % n, (("stripe-object", b"charge"),))
        for n in range(500)
    }
    for key, value, headers in sent:
        producer.send(kafka.topic, key=key, value=value, headers=list(headers))
    producer.flush()
    producer.close()

    read = {
        (row["key"], row["value"], tuple((h["key"], h["value"]) for h in row["headers"]))
        for row in read_topic_with_spark(spark_session, kafka).to_pylist()
    }
    assert read == sent


def test_the_stream_source_reads_with_the_jobs_options(spark_session, kafka: KafkaResource):
    stream = read_kafka_stream(
        spark_session,
        bootstrap=kafka.bootstrap,
        topic=kafka.topic,
        starting_offsets="earliest",
        max_offsets_per_trigger=10,
        fail_on_data_loss=True,
    )
    assert stream.isStreaming
    assert stream.schema.simpleString() == (
        "struct<key:binary,value:binary,topic:string,partition:int,offset:bigint,timestamp:timestamp,"
        "timestampType:int,headers:array<struct<key:string,value:binary>>>"
    )


def test_a_spark_without_the_connector_is_told_where_to_get_it(
    postgres: PostgresResource, kafka: KafkaResource, tmp_path
):
    # A cluster whose Spark image lacks the jar: the job names the jar and the image that carries it.
    command = spark_resource(checkpoint_root=str(tmp_path)).submit_command(
        bootstrap=kafka.bootstrap, topic=kafka.topic, trigger="available-now"
    )
    at = command.index("--jars")
    del command[at : at + 2]
    result = subprocess.run(
        command, env={**os.environ, **spark_resource().job_env(postgres)}, capture_output=True, text=True, timeout=300
    )
    output = result.stdout + result.stderr  # spark-submit passes the job's stderr on as its stdout
    assert result.returncode == job.EXIT_PREFLIGHT_FAILED, output
    assert "spark-sql-kafka-0-10_2.13-4.2.0 jar is not on its classpath" in output
    assert "make install" in output
