"""Faults across components, against real Kafka, Spark and PostgreSQL; each asserts the accounting.

What every test here checks once the dust settles: consumed = inserted + updated +
duplicates + quarantined, every object acknowledged by Kafka is in raw.transactions
exactly once at its latest version, and nothing else is.
(Killing Spark mid-batch and restarting PostgreSQL are in test_stream_job.py; Stripe
429/500s in test_stripe_api_ingestion.py; forex API failures in test_forex_*.py.)
"""

from __future__ import annotations

import os
import subprocess
import time

import pytest

from resource_helpers import kafka_resource, spark_resource
from stream_helpers import (
    SyntheticStream,
    assert_landed_exactly_once,
    caught_up,
    landed_ids,
    output_of,
    publish_charges,
    start_stream_job,
    stop_stream,
    wait_for,
)
from txstream_dagster.defs.stream.checks import every_message_is_accounted_for
from txstream_dagster.dev.embedded_kafka import KafkaNode
from txstream_dagster.resources import KafkaResource, PostgresResource
from txstream_spark import main as job

pytestmark = pytest.mark.slow

RATE = 250  # messages per second


def test_kafka_killed_mid_stream_and_restarted_loses_and_duplicates_nothing(
    clean_warehouse: PostgresResource, own_kafka: KafkaNode, tmp_path
):
    kafka = kafka_resource(bootstrap=own_kafka.bootstrap, topic="test.crash")
    kafka.ensure_topic(partitions=4, replication=1)
    spark = spark_resource(master="local[2]", checkpoint_root=str(tmp_path / "checkpoints"))
    stream = start_stream_job(spark, kafka, clean_warehouse, "processing-time", "500 milliseconds")
    producer = SyntheticStream(kafka, seed=21, rate=RATE)
    try:
        wait_for(lambda: len(landed_ids(clean_warehouse)) > 500, 180, "the stream to land the first events")
        own_kafka.kill()  # kill -9: producer and stream both lose their broker mid-flight
        time.sleep(3)
        own_kafka.start()
        time.sleep(5)
        producer.finish()
        wait_for(lambda: caught_up(clean_warehouse, kafka), 240, "the stream to land everything the topic holds")
        assert stream.poll() is None, "the stream did not ride out the crash"
    finally:
        producer.stop.set()
        stop_stream(stream)

    assert_landed_exactly_once(clean_warehouse, kafka, producer)


def run_reset(kafka: KafkaResource, checkpoint_root: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "TXSTREAM_TOPIC": kafka.topic, "TXSTREAM_SPARK_CHECKPOINT_DIR": checkpoint_root}
    return subprocess.run(["txstream", "stream", "reset"], env=env, capture_output=True, text=True, timeout=120)


def test_a_topic_deleted_and_created_again_stops_the_stream_clearly_until_reset(
    clean_warehouse: PostgresResource, kafka: KafkaResource, tmp_path
):
    spark = spark_resource(master="local[2]", checkpoint_root=str(tmp_path / "checkpoints"))
    old = publish_charges(kafka, 300, prefix="ch_old_")
    stream = start_stream_job(spark, kafka, clean_warehouse, "processing-time")
    try:
        wait_for(lambda: len(landed_ids(clean_warehouse)) == 300, 180, "the old topic's charges to land")
        with kafka.admin() as admin:
            admin.delete_topics([kafka.topic])
        wait_for(lambda: stream.poll() is not None, 180, "the stream to stop on its own")
    finally:
        output = stop_stream(stream)
    assert stream.returncode == job.EXIT_STREAM_FAILED
    assert "deleted" in output and "txstream stream reset" in output

    kafka.ensure_topic(partitions=2, replication=1)  # the same name, another topic
    new = publish_charges(kafka, 200, prefix="ch_new_")
    refused = start_stream_job(spark, kafka, clean_warehouse, "available-now")
    output = output_of(refused)
    assert refused.returncode == job.EXIT_PREFLIGHT_FAILED
    assert "was deleted and created again" in output and "txstream stream reset" in output
    assert landed_ids(clean_warehouse) == sorted(old)  # nothing of the new topic landed against the old offsets

    reset = run_reset(kafka, spark.checkpoint_root)
    assert reset.returncode == 0, reset.stdout + reset.stderr
    assert "Checkpoint moved to" in reset.stdout
    resumed = start_stream_job(spark, kafka, clean_warehouse, "available-now")
    output = output_of(resumed)
    assert resumed.returncode == 0, output
    assert landed_ids(clean_warehouse) == sorted(old | new)
    check = every_message_is_accounted_for(postgres=clean_warehouse, spark=spark_resource())
    assert check.passed, check.description  # each incarnation's ranges counted on their own


def test_a_checkpoint_that_cannot_be_written_stops_the_job_before_it_reads(
    clean_warehouse: PostgresResource, kafka: KafkaResource, tmp_path
):
    publish_charges(kafka, 10)
    not_a_folder = tmp_path / "a-file"
    not_a_folder.write_text("")
    spark = spark_resource(master="local[2]", checkpoint_root=str(not_a_folder / "checkpoints"))
    stream = start_stream_job(spark, kafka, clean_warehouse, "available-now")
    output = output_of(stream)
    assert stream.returncode == job.EXIT_PREFLIGHT_FAILED
    assert f"Cannot write the Spark checkpoint {not_a_folder}/checkpoints/{kafka.topic}" in output
    assert "TXSTREAM_SPARK_CHECKPOINT_DIR" in output
    assert landed_ids(clean_warehouse) == []
