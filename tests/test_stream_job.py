"""The real Spark job, launched the way Dagster launches it, against the real broker and PostgreSQL."""

from __future__ import annotations

import os
import signal
import subprocess
import time

import dagster as dg
import psycopg
import pytest
from psycopg import sql

from resource_helpers import spark_resource
from stream_helpers import (
    JOB_SETTINGS,
    assert_every_message_accounted_for_once,
    landed_ids,
    publish_charges,
    start_stream_job,
    wait_for,
)
from txstream_dagster.defs.stream.assets import raw_transactions
from txstream_dagster.defs.stream.checks import every_message_is_accounted_for, quarantine_rate_is_low
from txstream_dagster.defs.stream.resources import SparkResource
from txstream_dagster.jvm import JvmDependencyMissing
from txstream_dagster.resources import KafkaResource, PostgresResource
from txstream_spark import main as job
from txstream_spark.sink import staging_prefix

pytestmark = pytest.mark.slow

MALFORMED = [b"{not json", b"[]", b"\xff\xfe", b'{"object": "invoice", "id": "in_1"}']


@pytest.fixture
def spark(tmp_path) -> SparkResource:
    return spark_resource(master="local[2]", max_offsets_per_trigger=500, checkpoint_root=str(tmp_path / "checkpoints"))


def materialize_stream(spark: SparkResource, kafka: KafkaResource, postgres: PostgresResource):
    return dg.materialize(
        [raw_transactions, every_message_is_accounted_for, quarantine_rate_is_low],
        resources={
            "spark": spark,
            "kafka": kafka,
            "postgres": postgres,
            "pipes_subprocess_client": dg.PipesSubprocessClient(),
        },
        raise_on_error=False,
    )


def test_a_dagster_run_lands_every_charge_once_and_quarantines_the_rest(
    clean_warehouse: PostgresResource, kafka: KafkaResource, spark: SparkResource
):
    ids = publish_charges(kafka, 1200, malformed=MALFORMED)

    result = materialize_stream(spark, kafka, clean_warehouse)

    assert result.success
    [materialization] = result.asset_materializations_for_node("raw_transactions")
    metadata = {k: v.value for k, v in materialization.metadata.items()}
    assert (metadata["consumed"], metadata["inserted"], metadata["quarantined"]) == (1204, 1200, 4)
    assert metadata["batches"] >= 3  # 500 offsets per trigger
    assert metadata["messages_landed"] == 1204
    assert landed_ids(clean_warehouse) == sorted(ids)
    assert sorted(r for (r,) in clean_warehouse.fetch_all("SELECT reason FROM raw.quarantined_events")) == sorted(
        ["invalid_json", "not_an_object", "invalid_utf8", "unknown_object_type"]
    )
    checks = {c.check_name: c for c in result.get_asset_check_evaluations()}
    assert checks["every_message_is_accounted_for"].passed
    assert checks["quarantine_rate_is_low"].passed  # 4 of 1204 is under the 1% bar
    assert checks["quarantine_rate_is_low"].metadata["quarantined"].value == 4
    # … and a second run with nothing new changes nothing.
    again = materialize_stream(spark, kafka, clean_warehouse)
    [second] = again.asset_materializations_for_node("raw_transactions")
    assert second.metadata["consumed"].value == 0
    assert landed_ids(clean_warehouse) == sorted(ids)


def batches(postgres: PostgresResource) -> int:
    return postgres.fetch_one("SELECT count(*) FROM ops.stream_batches")[0]


def staged_rows(conn: psycopg.Connection, topic: str) -> int | None:
    """Rows the job's tasks staged that its driver has not applied yet; None while the driver holds the
    table (creating, truncating it), when the answer would have to wait."""
    tables = [
        name
        for (name,) in conn.execute(
            "SELECT tablename FROM pg_tables WHERE schemaname = 'ops' AND starts_with(tablename, %s)",
            [staging_prefix(topic)],
        )
    ]
    try:
        return (
            sum(
                conn.execute(sql.SQL("SELECT count(*) FROM {}").format(sql.Identifier("ops", table))).fetchone()[0]
                for table in tables
            )
            if tables
            else None
        )
    except (psycopg.errors.LockNotAvailable, psycopg.errors.UndefinedTable):
        return None


def freeze_mid_batch(stream: subprocess.Popen, postgres: PostgresResource, topic: str, timeout: float) -> int:
    """SIGSTOP the job at a moment its batch is staged but not applied; returns the rows staged.

    Staged rows are seen the instant the tasks commit their COPY, and the driver empties the
    table when its apply commits, so the job is frozen as soon as rows show up, then looked at
    again: if the apply's COMMIT was already on its way, the rows are gone, and the job is
    thawed to try the next batch.
    """
    deadline = time.monotonic() + timeout
    too_late = 0
    with postgres.connect(autocommit=True) as conn:
        conn.execute("SET lock_timeout = '100ms'")
        while time.monotonic() < deadline:
            if stream.poll() is not None:
                break
            if staged_rows(conn, topic):
                os.killpg(stream.pid, signal.SIGSTOP)
                time.sleep(0.5)  # a COMMIT the driver sent just before is done by now
                staged = staged_rows(conn, topic)
                if staged:
                    return staged
                os.killpg(stream.pid, signal.SIGCONT)
                too_late += 1
            time.sleep(0.005)
    raise AssertionError(
        f"never caught a batch staged but not yet applied within {timeout:.0f} s (job exit code {stream.poll()}, "
        f"{too_late} freezes came after the apply, {batches(postgres)} batches committed): the kill could not "
        "land mid-batch"
    )


def test_kill_9_mid_batch_then_restart_loses_nothing_and_duplicates_nothing(
    clean_warehouse: PostgresResource, kafka: KafkaResource, spark: SparkResource
):
    ids = publish_charges(kafka, 6000)
    stream = start_stream_job(spark, kafka, clean_warehouse, "processing-time")  # 500 offsets per trigger: 12 batches
    try:
        wait_for(lambda: batches(clean_warehouse) >= 1, 120, "a first committed batch")
        staged = freeze_mid_batch(stream, clean_warehouse, kafka.topic, 120)
    finally:
        os.killpg(stream.pid, signal.SIGKILL)
        stream.wait(30)
    assert len(landed_ids(clean_warehouse)) < 6000, "the job finished before it was killed"
    # The kill left a staged batch that never reached raw.transactions: the restart must replay it.
    # (Spark's Python workers have a process group of their own: one may still have staged more.)
    with clean_warehouse.connect(autocommit=True) as conn:
        assert staged_rows(conn, kafka.topic) >= staged

    restarted = start_stream_job(spark, kafka, clean_warehouse, "available-now")
    output, _ = restarted.communicate(timeout=300)
    assert restarted.returncode == 0, output

    assert landed_ids(clean_warehouse) == sorted(ids)
    assert_every_message_accounted_for_once(clean_warehouse, 6000)


def test_a_postgres_restart_while_streaming_loses_nothing(
    clean_warehouse: PostgresResource, kafka: KafkaResource, spark: SparkResource, local_stack
):
    ids = publish_charges(kafka, 500, prefix="ch_before_")
    stream = start_stream_job(spark, kafka, clean_warehouse, "processing-time")
    try:
        wait_for(lambda: len(landed_ids(clean_warehouse)) == 500, 120, "the first charges to land")
        local_stack.postgres.stop()
        ids |= publish_charges(kafka, 500, prefix="ch_during_")
        time.sleep(2)
        local_stack.postgres.start()
        ids |= publish_charges(kafka, 500, prefix="ch_after_")
        wait_for(lambda: len(landed_ids(clean_warehouse)) == 1500, 120, "every charge to land after the restart")
    finally:
        os.killpg(stream.pid, signal.SIGTERM)
        stream.wait(60)
    assert landed_ids(clean_warehouse) == sorted(ids)
    assert_every_message_accounted_for_once(clean_warehouse, 1500)


def test_the_job_refuses_to_start_when_the_broker_is_unreachable(
    postgres: PostgresResource, tmp_path, monkeypatch, capsys
):
    monkeypatch.setenv("TXSTREAM_POSTGRES_URL", postgres.url_for())
    code = job.main(["--bootstrap", "127.0.0.1:1", "--topic", "t", "--checkpoint", str(tmp_path), *JOB_SETTINGS])
    assert code == job.EXIT_PREFLIGHT_FAILED
    assert "Cannot reach Kafka at 127.0.0.1:1 (TXSTREAM_KAFKA_BOOTSTRAP)" in capsys.readouterr().err


def test_the_job_refuses_to_start_when_the_database_is_unreachable(monkeypatch, tmp_path, capsys):
    monkeypatch.setenv("TXSTREAM_POSTGRES_URL", "postgresql://u:secret@127.0.0.1:1/db")
    code = job.main(["--bootstrap", "127.0.0.1:1", "--topic", "t", "--checkpoint", str(tmp_path), *JOB_SETTINGS])
    err = capsys.readouterr().err
    assert code == job.EXIT_PREFLIGHT_FAILED
    assert "Cannot connect to PostgreSQL postgresql://u:***@127.0.0.1:1/db (TXSTREAM_POSTGRES_URL)" in err
    assert "secret" not in err


def test_spark_resource_refuses_to_submit_without_java(monkeypatch, spark: SparkResource):
    monkeypatch.setenv("JAVA_HOME", "/nonexistent")
    with pytest.raises(JvmDependencyMissing, match="Java was not found"):
        spark.submit_command(bootstrap="b:9092", topic="t", trigger="available-now")
