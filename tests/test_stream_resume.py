"""PostgreSQL decides where the stream resumes, and one stream query at a time writes a topic.

Pure: `decide_resume` for every way the checkpoint and the database can disagree.
Real (Spark, Kafka, PostgreSQL): a database restored from a backup, a checkpoint
deleted with `latest`, two jobs started at once, and a PostgreSQL restart between two
jobs; each ends with every message landed exactly once and the accounting right.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from resource_helpers import spark_resource
from stream_helpers import (
    assert_every_message_accounted_for_once,
    landed_ids,
    output_of,
    publish_charges,
    start_stream_job,
    stop_stream,
    wait_for,
)
from txstream_dagster.db.logins import Login
from txstream_dagster.defs.stream.resources import SparkResource
from txstream_dagster.resources import KafkaResource, PostgresResource
from txstream_spark import main as job
from txstream_spark.checkpoint import decide_resume
from txstream_spark.kafka_topic import TopicDescription
from txstream_spark.preflight import LandedOffsets, PreflightError

TOPIC = TopicDescription("stripe.events", "id-now", partitions=3)


# --- the decision, pure ---------------------------------------------------------------------


def test_a_checkpoint_that_agrees_with_postgresql_is_resumed():
    plan = decide_resume(TOPIC, {0: 10, 1: 5, 2: 0}, True, LandedOffsets("id-now", {0: 10, 1: 5}), "earliest")
    assert (plan.set_aside, plan.starting_offsets) == (False, "earliest")


def test_a_database_behind_the_checkpoint_wins_and_nothing_between_is_skipped():
    # Restored from last night's backup: the checkpoint is ahead; its offsets would skip what the backup lost.
    plan = decide_resume(TOPIC, {0: 900, 1: 800, 2: 700}, True, LandedOffsets("id-now", {0: 100, 1: 50}), "latest")
    assert plan.set_aside
    assert json.loads(plan.starting_offsets) == {"stripe.events": {"0": 100, "1": 50, "2": -2}}
    assert "PostgreSQL" in plan.reason


def test_a_checkpoint_one_batch_behind_after_a_crash_is_not_replayed_but_skipped_to_postgresql():
    plan = decide_resume(TOPIC, {0: 100}, True, LandedOffsets("id-now", {0: 150}), "earliest")
    assert plan.set_aside and json.loads(plan.starting_offsets)["stripe.events"]["0"] == 150


def test_a_lost_checkpoint_resumes_from_postgresql_even_when_new_queries_start_at_latest():
    plan = decide_resume(TOPIC, None, False, LandedOffsets("id-now", {0: 7, 2: 3}), "latest")
    assert not plan.set_aside
    assert json.loads(plan.starting_offsets) == {"stripe.events": {"0": 7, "1": -2, "2": 3}}


def test_a_database_that_lost_everything_reads_the_topic_again_from_its_start():
    plan = decide_resume(TOPIC, {0: 40}, True, LandedOffsets(None, {}), "latest")
    assert (plan.set_aside, plan.starting_offsets) == (True, "earliest")


def test_a_new_stream_starts_where_the_setting_says():
    assert decide_resume(TOPIC, None, False, LandedOffsets(None, {}), "latest").starting_offsets == "latest"


def test_a_checkpoint_of_a_topic_since_deleted_and_created_again_is_refused_naming_the_reset():
    with pytest.raises(PreflightError, match="txstream stream reset"):
        decide_resume(TOPIC, {0: 5}, True, LandedOffsets("id-before", {0: 5}), "earliest")
    # Reset (no checkpoint): the new topic is read from its start.
    plan = decide_resume(TOPIC, None, False, LandedOffsets("id-before", {0: 5}), "earliest")
    assert plan.starting_offsets == "earliest"


# --- against the real services ----------------------------------------------------------------


@pytest.fixture
def spark(tmp_path) -> SparkResource:
    return spark_resource(master="local[2]", max_offsets_per_trigger=200, checkpoint_root=str(tmp_path / "checkpoints"))


def run_to_the_end(spark: SparkResource, kafka: KafkaResource, postgres: PostgresResource) -> str:
    finished = start_stream_job(spark, kafka, postgres, "available-now")
    output = output_of(finished)
    assert finished.returncode == 0, output
    return output


RESTORED_TABLES = ("raw.transactions", "raw.quarantined_events", "ops.stream_offsets", "ops.stream_batches")


@pytest.mark.slow
def test_a_database_restored_from_a_backup_gets_back_what_it_lost(
    clean_warehouse: PostgresResource, kafka: KafkaResource, spark: SparkResource
):
    ids = publish_charges(kafka, 300, prefix="ch_before_backup_")
    run_to_the_end(spark, kafka, clean_warehouse)
    with clean_warehouse.connect(login=Login.OWNER) as conn:  # the backup, and the restore, by the DBA
        for table in RESTORED_TABLES:
            conn.execute(f'CREATE TEMP TABLE "backup {table}" AS SELECT * FROM {table}')
        conn.commit()
        ids |= publish_charges(kafka, 200, prefix="ch_after_backup_")
        run_to_the_end(spark, kafka, clean_warehouse)
        assert len(landed_ids(clean_warehouse)) == 500
        for table in RESTORED_TABLES:  # … restored: the checkpoint is now 200 messages ahead of the database
            conn.execute(f"TRUNCATE {table}")
            conn.execute(f'INSERT INTO {table} SELECT * FROM "backup {table}"')
        conn.commit()
    assert len(landed_ids(clean_warehouse)) == 300

    output = run_to_the_end(spark, kafka, clean_warehouse)

    assert "resuming from PostgreSQL's offsets" in output and "checkpoint moved to" in output
    assert landed_ids(clean_warehouse) == sorted(ids)
    assert_every_message_accounted_for_once(clean_warehouse, 500)


@pytest.mark.slow
def test_a_deleted_checkpoint_with_latest_resumes_where_postgresql_is_and_loses_nothing(
    clean_warehouse: PostgresResource, kafka: KafkaResource, tmp_path
):
    spark = spark_resource(master="local[2]", starting_offsets="latest", checkpoint_root=str(tmp_path / "checkpoints"))
    publish_charges(kafka, 1, prefix="ch_ignored_by_latest_")  # before the first start: `latest` skips it
    first = start_stream_job(spark, kafka, clean_warehouse, "processing-time")
    initial_offsets = Path(spark.checkpoint_for(kafka.topic)) / "sources" / "0" / "0"  # Spark notes `latest` there
    try:
        wait_for(initial_offsets.exists, 120, "the stream to start at the topic's end")
        ids = publish_charges(kafka, 100, prefix="ch_seen_")
        wait_for(lambda: len(landed_ids(clean_warehouse)) == 100, 120, "the first charges to land")
    finally:
        stop_stream(first)
    shutil.rmtree(spark.checkpoint_for(kafka.topic))
    ids |= publish_charges(kafka, 50, prefix="ch_while_stopped_")  # `latest` alone would skip these

    output = run_to_the_end(spark, kafka, clean_warehouse)

    assert "resuming from PostgreSQL's offsets" in output
    assert landed_ids(clean_warehouse) == sorted(ids)
    assert_every_message_accounted_for_once(clean_warehouse, 150)


@pytest.mark.slow
def test_two_jobs_started_at_once_on_one_topic_one_writes_the_other_refuses(
    clean_warehouse: PostgresResource, kafka: KafkaResource, tmp_path
):
    ids = publish_charges(kafka, 400)
    jobs = [
        start_stream_job(
            spark_resource(master="local[1]", checkpoint_root=str(tmp_path / name)),
            kafka,
            clean_warehouse,
            "available-now",
        )
        for name in ("first", "second")
    ]
    outputs = [output_of(started) for started in jobs]

    assert sorted(started.returncode for started in jobs) == [0, job.EXIT_ALREADY_RUNNING]
    refused = outputs[[started.returncode for started in jobs].index(job.EXIT_ALREADY_RUNNING)]
    assert f"Another stream query is already writing topic {kafka.topic}" in refused
    assert landed_ids(clean_warehouse) == sorted(ids)
    assert_every_message_accounted_for_once(clean_warehouse, 400)


@pytest.mark.slow
def test_after_a_postgresql_restart_only_one_of_two_queries_keeps_writing(
    clean_warehouse: PostgresResource, kafka: KafkaResource, local_stack, tmp_path
):
    ids = publish_charges(kafka, 200, prefix="ch_first_")
    spark = spark_resource(master="local[2]", checkpoint_root=str(tmp_path / "a"))
    first = start_stream_job(spark, kafka, clean_warehouse, "processing-time", "500 milliseconds")
    second = None
    try:
        wait_for(lambda: len(landed_ids(clean_warehouse)) == 200, 120, "the first query to land the first charges")
        local_stack.postgres.stop()  # the first query's lock goes with its session
        local_stack.postgres.start()
        # A second query, on another checkpoint, starts before the first one reconnects, and takes the lock.
        second = start_stream_job(
            spark_resource(master="local[1]", checkpoint_root=str(tmp_path / "b")),
            kafka,
            clean_warehouse,
            "processing-time",
            "500 milliseconds",
        )
        ids |= publish_charges(kafka, 300, prefix="ch_after_restart_")
        wait_for(lambda: len(landed_ids(clean_warehouse)) == 500, 240, "every charge to land")
        wait_for(lambda: first.poll() is not None or second.poll() is not None, 120, "one of the two to stop")
    finally:
        outputs = [stop_stream(started) for started in (first, second) if started is not None]

    lost = [
        output for output in outputs if "WriterLost" in output or "writer lock" in output or "already writing" in output
    ]
    assert lost, "neither query noticed the other holding the topic's writer lock"
    assert landed_ids(clean_warehouse) == sorted(ids)
    assert_every_message_accounted_for_once(clean_warehouse, 500)
