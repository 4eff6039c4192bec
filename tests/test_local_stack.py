"""The embedded stack and the resources the pipeline uses, against the real services."""

from __future__ import annotations

import os
import subprocess
import sys
import time
import uuid
from itertools import islice

import psutil
import pytest

from txstream_dagster.local_stack import LocalStack, StackNotRunning
from txstream_dagster.local_stack.processes import PortInUse, free_port
from txstream_dagster.resources import KafkaResource, PostgresResource
from txstream_dagster.resources.kafka import BrokerUnavailable
from txstream_dagster.resources.postgres import WarehouseUnavailable
from txstream_dagster.settings import Settings, get_settings


def test_a_topic_carries_a_message_from_producer_to_consumer(kafka: KafkaResource):
    producer = kafka.producer()
    sent = producer.send(kafka.topic, key=b"ch_1", value=b'{"id": "ch_1"}').get(timeout=10)
    producer.close()

    assert kafka.end_offsets()[sent.partition] == sent.offset + 1
    consumer = kafka.consumer()
    from kafka import TopicPartition

    consumer.assign([TopicPartition(kafka.topic, sent.partition)])
    consumer.seek(TopicPartition(kafka.topic, sent.partition), sent.offset)
    records = consumer.poll(timeout_ms=5000)
    consumer.close()
    [record] = [r for batch in records.values() for r in batch]
    assert (record.key, record.value) == (b"ch_1", b'{"id": "ch_1"}')


@pytest.mark.parametrize("codec", ["gzip", "snappy", "lz4", "zstd"])
def test_compressed_messages_reach_the_streams_reader_unchanged(codec, kafka: KafkaResource, monkeypatch):
    # The stream reads with confluent-kafka (kafka_source.read_range), the Dagster side with kafka-python;
    # every codec's package comes with txstream (kafka-python's extras).
    from kafka import TopicPartition

    from txstream_spark.kafka_source import KafkaRange, read_range

    monkeypatch.setenv("TXSTREAM_PRODUCER_COMPRESSION", codec)
    get_settings.cache_clear()
    try:
        producer = kafka.producer()
    finally:
        monkeypatch.undo()
        get_settings.cache_clear()
    assert producer.config["compression_type"] == codec
    sent = {
        (f"ch_{n}".encode(), b'{"id": "ch_%d", "amount": 1000}' % n, (("stripe-object", b"charge"),))
        for n in range(500)
    }
    for key, value, headers in sent:
        producer.send(kafka.topic, key=key, value=value, headers=list(headers))
    producer.flush()
    producer.close()

    ends = kafka.end_offsets()
    assert sum(ends.values()) == len(sent)
    topic_id = kafka.describe_topic().topic_id
    read = set()
    for partition, end in ends.items():
        for batch in read_range(KafkaRange(kafka.resolved_bootstrap(), kafka.topic, topic_id, partition, 0, end)):
            for row in batch.to_pylist():
                read.add((row["key"], row["value"], tuple((h["key"], h["value"]) for h in row["headers"])))
    assert read == sent

    consumer = kafka.consumer(consumer_timeout_ms=5_000)
    consumer.assign([TopicPartition(kafka.topic, partition) for partition in ends])
    consumer.seek_to_beginning()
    by_kafka_python = {(r.key, r.value, tuple(r.headers)) for r in islice(consumer, len(sent))}
    consumer.close()
    assert by_kafka_python == sent


def test_topic_is_created_with_the_requested_partitions(local_stack):
    kafka = KafkaResource(topic=f"test.{uuid.uuid4().hex[:8]}")
    assert kafka.ensure_topic(partitions=3, replication=1) is True
    assert kafka.ensure_topic(partitions=3, replication=1) is False
    assert kafka.describe_topic().partitions == 3
    assert kafka.end_offsets() == {0: 0, 1: 0, 2: 0}


def test_a_row_written_is_read_back(clean_warehouse: PostgresResource):
    clean_warehouse.copy_rows(
        "ops.source_cursors", ["source", "stream", "position"], [("test", "charges", '{"after": "ch_9"}')]
    )
    assert clean_warehouse.fetch_all("SELECT source, stream, position FROM ops.source_cursors") == [
        ("test", "charges", {"after": "ch_9"})
    ]


def test_migrations_are_idempotent(postgres: PostgresResource):
    assert postgres.migrate() == []
    applied = postgres.fetch_all("SELECT version FROM ops.schema_migrations ORDER BY version")
    assert [v for (v,) in applied] == list(range(1, len(applied) + 1))


def test_the_read_only_role_sees_marts_but_not_raw_data(postgres: PostgresResource):
    import psycopg

    with psycopg.connect(postgres.reader_url()) as conn:
        assert conn.execute("SELECT current_user").fetchone() == ("txstream_reader",)
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            conn.execute("SELECT * FROM raw.transactions")
    with psycopg.connect(postgres.reader_url()) as conn:
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            conn.execute("CREATE TABLE marts.intruder (x int)")


def test_starting_twice_is_harmless(local_stack: LocalStack):
    assert all("already running" in line for line in local_stack.up())


def test_a_taken_port_is_named_with_the_setting_to_change(tmp_path, local_stack: LocalStack):
    busy = local_stack.postgres.running_port()
    stack = LocalStack(Settings(data_dir=tmp_path, local_postgres_port=busy, kafka_bootstrap="unused:9092"))
    with pytest.raises(PortInUse, match="TXSTREAM_LOCAL_POSTGRES_PORT"):
        stack.up()


def test_a_stale_broker_pid_file_is_cleaned_up(tmp_path):
    stack = LocalStack(Settings(data_dir=tmp_path, local_kafka_port=free_port(), postgres_url="postgresql://u:p@h/db"))
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    stack.broker.pid_file.write(dead.pid)
    stack.broker.port_file.write_text("1")
    assert not stack.broker.is_running()
    assert not stack.broker.pid_file.path.exists()
    try:
        assert stack.up() == [f"Kafka broker started on 127.0.0.1:{stack.settings.local_kafka_port}"]
    finally:
        stack.down()


def test_a_postmaster_pid_reused_by_another_program_is_not_a_running_postgres(tmp_path):
    # Regression: running_port() trusted os.kill(pid, 0), so a stale postmaster.pid whose PID now
    # belongs to another process made `txstream up` say "already running" and start nothing.
    stack = LocalStack(Settings(data_dir=tmp_path, local_postgres_port=free_port(), kafka_bootstrap="unused:9092"))
    stack.up()
    stack.down()  # a data dir as a crash leaves it, but for the lock file
    postmaster_pid = stack.postgres.pgdata / "postmaster.pid"
    other = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)"])
    try:
        postmaster_pid.write_text(f"{other.pid}\n{stack.postgres.pgdata}\n1764000000\n{stack.settings.local_postgres_port}\n")
        assert stack.postgres.running_port() is None and not stack.postgres.is_running()
        assert postmaster_pid.exists()  # PostgreSQL's lock file: only `up` may remove it
        try:
            assert stack.up() == [f"PostgreSQL started on 127.0.0.1:{stack.settings.local_postgres_port}"]
            assert int(postmaster_pid.read_text().split()[0]) != other.pid
            assert stack.postgres.is_running()
        finally:
            stack.down()
    finally:
        other.kill()
        other.wait()


def test_a_postmaster_pid_of_a_dead_process_is_left_to_postgresql(tmp_path):
    stack = LocalStack(Settings(data_dir=tmp_path, kafka_bootstrap="unused:9092"))
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    stack.postgres.pgdata.mkdir(parents=True)
    (stack.postgres.pgdata / "postmaster.pid").write_text(f"{dead.pid}\n\n\n55432\n")
    assert stack.postgres.running_port() is None
    assert not stack.postgres.postmaster_pid.names_another_program()


def test_down_stops_everything_it_started(tmp_path):
    settings = Settings(data_dir=tmp_path, local_postgres_port=free_port(), local_kafka_port=free_port())
    stack = LocalStack(settings)
    stack.up()
    pids = [stack.broker.pid_file.live_process().pid, int((stack.postgres.pgdata / "postmaster.pid").read_text().split()[0])]
    assert stack.down() == ["Kafka broker stopped", "PostgreSQL stopped"]
    time.sleep(0.2)
    assert not any(psutil.pid_exists(pid) and psutil.Process(pid).status() != psutil.STATUS_ZOMBIE for pid in pids)
    assert stack.down() == []
    with pytest.raises(StackNotRunning, match="txstream up"):
        stack.postgres_url()


def test_embedded_postgres_keeps_its_data_across_restarts(tmp_path):
    settings = Settings(data_dir=tmp_path, local_postgres_port=free_port(), kafka_bootstrap="unused:9092")
    stack = LocalStack(settings)
    stack.up()
    try:
        resource = PostgresResource(url=stack.postgres_url())
        resource.migrate()
        resource.copy_rows("ops.source_cursors", ["source", "stream", "position"], [("s", "t", "{}")])
        stack.down()
        stack.up()
        assert resource.fetch_all("SELECT source FROM ops.source_cursors") == [("s",)]
    finally:
        stack.down()


# --- broken configuration fails fast and names the setting to fix -----------


def test_wrong_password_names_the_setting(postgres: PostgresResource):
    url = postgres.resolved_url().replace("txstream:", "txstream:", 1)
    user, rest = url.split("@", 1)
    bad = f"{user.rsplit(':', 1)[0]}:wrong-password@{rest}"
    started = time.monotonic()
    with pytest.raises(WarehouseUnavailable, match="TXSTREAM_POSTGRES_URL") as failure:
        PostgresResource(url=bad).fetch_one("SELECT 1")
    assert time.monotonic() - started < 10
    assert "wrong-password" not in str(failure.value)
    assert "password authentication failed" in str(failure.value)


def test_unreachable_database_names_the_setting():
    started = time.monotonic()
    with pytest.raises(WarehouseUnavailable, match="TXSTREAM_POSTGRES_URL"):
        PostgresResource(url=f"postgresql://u:secret@127.0.0.1:{free_port()}/db").fetch_one("SELECT 1")
    assert time.monotonic() - started < 10


def test_malformed_database_url_is_refused_by_the_settings():
    with pytest.raises(ValueError, match="TXSTREAM_POSTGRES_URL=mysql://u:\\*\\*\\*@h/db"):
        Settings(postgres_url="mysql://u:secret@h/db")


def test_unreachable_broker_names_the_setting():
    started = time.monotonic()
    with pytest.raises(BrokerUnavailable, match="TXSTREAM_KAFKA_BOOTSTRAP"):
        KafkaResource(bootstrap=f"127.0.0.1:{free_port()}", topic="t").end_offsets()
    assert time.monotonic() - started < 15


def test_cli_reports_a_stopped_stack_clearly(tmp_path):
    env = {**os.environ, "TXSTREAM_DATA_DIR": str(tmp_path)}
    result = subprocess.run(["txstream", "status"], env=env, capture_output=True, text=True, timeout=60)
    assert result.returncode == 1
    assert "run `txstream up`" in result.stdout
    assert "Traceback" not in result.stdout + result.stderr
