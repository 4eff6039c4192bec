"""The embedded stack and the resources the pipeline uses, against the real services."""

from __future__ import annotations

import os
import subprocess
import sys
import time
import uuid
from contextlib import closing

import psutil
import pytest
from kafka import TopicPartition
from kafka.admin import ConfigResource, ConfigResourceType
from kafka.errors import KafkaError

from resource_helpers import kafka_resource
from txstream_dagster.db.migrate import upgrade_warehouse
from txstream_dagster.dev.processes import PortInUse, free_port
from txstream_dagster.dev.stack import LocalStack
from txstream_dagster.jvm import JvmDependencyMissing
from txstream_dagster.resources import KafkaResource, PostgresResource
from txstream_dagster.resources.build import login_passwords, warehouse
from txstream_dagster.resources.kafka import BrokerUnavailable, TopicNotFound
from txstream_dagster.resources.postgres import WarehouseUnavailable, with_credentials
from txstream_dagster.settings import Settings


def test_a_topic_carries_a_message_from_producer_to_consumer(kafka: KafkaResource):
    producer = kafka.producer()
    sent = producer.send(kafka.topic, key=b"ch_1", value=b'{"id": "ch_1"}').get(timeout=10)
    producer.close()

    assert kafka.end_offsets()[sent.partition] == sent.offset + 1
    consumer = kafka.consumer()
    consumer.assign([TopicPartition(kafka.topic, sent.partition)])
    consumer.seek(TopicPartition(kafka.topic, sent.partition), sent.offset)
    records = consumer.poll(timeout_ms=5000)
    consumer.close()
    [record] = [r for batch in records.values() for r in batch]
    assert (record.key, record.value) == (b"ch_1", b'{"id": "ch_1"}')


def test_topic_is_created_with_the_requested_partitions(local_stack):
    kafka = kafka_resource(topic=f"test.{uuid.uuid4().hex[:8]}")
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
    assert upgrade_warehouse(postgres, {}) == []
    applied = postgres.fetch_all("SELECT version FROM ops.schema_migrations ORDER BY version")
    assert [v for (v,) in applied] == list(range(1, len(applied) + 1))


def test_starting_twice_is_harmless(local_stack: LocalStack):
    assert all("already running" in line for line in local_stack.up())


def test_a_taken_port_is_named_with_the_setting_to_change(tmp_path, local_stack: LocalStack):
    busy = local_stack.postgres.running_port()
    stack = LocalStack(Settings(data_dir=tmp_path, local_postgres_port=busy, kafka_bootstrap="unused:9092"))
    with pytest.raises(PortInUse, match="TXSTREAM_LOCAL_POSTGRES_PORT"):
        stack.up()


def own_kafka_settings(tmp_path, isolated_settings: Settings, **overrides) -> Settings:
    """Settings for a stack of the test's own, whose Kafka it may stop, kill and start (PostgreSQL external)."""
    return Settings(
        data_dir=tmp_path,
        jvm_dir=isolated_settings.jvm_lib_dir,
        local_kafka_port=free_port(),
        local_kafka_controller_port=free_port(),
        postgres_url="postgresql://u:p@h/db",
        **overrides,
    )


def test_a_stale_kafka_pid_file_is_cleaned_up(tmp_path, isolated_settings: Settings):
    stack = LocalStack(own_kafka_settings(tmp_path, isolated_settings))
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    stack.kafka.pid_file.write(dead.pid)
    stack.kafka.port_file.write_text("1")
    assert not stack.kafka.is_running()
    assert not stack.kafka.pid_file.path.exists()
    try:
        assert stack.up() == [f"Kafka started on 127.0.0.1:{stack.settings.local_kafka_port}"]
    finally:
        stack.down()


def test_a_kafka_pid_reused_by_another_java_program_is_not_our_kafka(tmp_path, isolated_settings: Settings):
    # Every JVM is called `java`: only the one started with our server.properties is ours.
    stack = LocalStack(own_kafka_settings(tmp_path, isolated_settings))
    other = subprocess.Popen(["java", "-version"], stderr=subprocess.DEVNULL)
    try:
        stack.kafka.pid_file.write(other.pid)
        stack.kafka.port_file.write_text(str(stack.settings.local_kafka_port))
        assert not stack.kafka.is_running()
    finally:
        other.kill()
        other.wait()


def committed_messages(kafka: KafkaResource) -> list[tuple[bytes, bytes]]:
    with closing(kafka.consumer(consumer_timeout_ms=5_000)) as consumer:
        partitions = [TopicPartition(kafka.topic, p) for p in kafka.end_offsets()]
        consumer.assign(partitions)
        consumer.seek_to_beginning(*partitions)
        return sorted((r.key, r.value) for r in consumer)


def test_kafka_keeps_topics_and_messages_across_down_up_and_kill_9(tmp_path, isolated_settings: Settings):
    stack = LocalStack(own_kafka_settings(tmp_path, isolated_settings))
    stack.up()
    try:
        kafka = kafka_resource(bootstrap=stack.kafka.bootstrap, topic="test.durable")
        kafka.ensure_topic(partitions=3, replication=1)
        topic_id = kafka.describe_topic().topic_id
        producer = kafka.producer()
        for n in range(300):
            producer.send(kafka.topic, key=f"ch_{n}".encode(), value=b"v%d" % n)
        producer.flush()
        producer.close()
        sent = sorted((f"ch_{n}".encode(), b"v%d" % n) for n in range(300))

        stack.down()
        stack.up()
        assert committed_messages(kafka) == sent

        stack.kafka.kill()  # a crash: no controlled shutdown, the log is recovered on start
        assert not stack.kafka.is_running()
        assert stack.up() == [f"Kafka started on 127.0.0.1:{stack.settings.local_kafka_port}"]
        assert committed_messages(kafka) == sent
        assert kafka.describe_topic().topic_id == topic_id  # the same topic, not one created again
        assert sum(kafka.end_offsets().values()) == 300
    finally:
        stack.down()


def test_kafka_runs_with_auto_creation_off_and_the_configured_retention(tmp_path, isolated_settings: Settings):
    settings = own_kafka_settings(
        tmp_path, isolated_settings, local_kafka_retention_hours=24, local_kafka_retention_bytes=64 * 1024**2
    )
    stack = LocalStack(settings)
    stack.up()
    try:
        kafka = kafka_resource(bootstrap=stack.kafka.bootstrap, topic="test.never.created")
        with kafka.admin() as admin:
            configs = admin.describe_configs([ConfigResource(ConfigResourceType.BROKER, "1")], config_filter="all")
        values = {name: entry["value"] for name, entry in configs["broker"]["1"].items()}
        assert values["auto.create.topics.enable"] == "false"
        assert values["log.retention.hours"] == "24"
        assert values["log.retention.bytes"] == str(64 * 1024**2)
        producer = kafka.producer(max_block_ms=2_000)
        with pytest.raises(KafkaError):
            producer.send(kafka.topic, b"x").get(timeout=5)  # no topic appears by itself
        producer.close(timeout=1)
        with pytest.raises(TopicNotFound, match="txstream topic create"):
            kafka.describe_topic()
    finally:
        stack.down()


def test_missing_kafka_jars_name_the_command_that_installs_them(tmp_path, isolated_settings: Settings):
    settings = own_kafka_settings(tmp_path, isolated_settings)
    stack = LocalStack(settings.model_copy(update={"jvm_dir": tmp_path / "empty"}))
    with pytest.raises(JvmDependencyMissing, match=r"kafka-broker jars are not in .*: run `make install`"):
        stack.up()


def test_missing_java_is_named_with_what_to_install(tmp_path, isolated_settings: Settings, monkeypatch):
    monkeypatch.setenv("JAVA_HOME", str(tmp_path / "no-jdk"))
    with pytest.raises(JvmDependencyMissing, match="Java was not found.*openjdk-17"):
        LocalStack(own_kafka_settings(tmp_path, isolated_settings)).up()


def test_a_taken_kafka_port_is_named_with_the_setting_to_change(tmp_path, isolated_settings: Settings, local_stack):
    busy = int(local_stack.kafka.bootstrap.rsplit(":", 1)[1])
    stack = LocalStack(own_kafka_settings(tmp_path, isolated_settings).model_copy(update={"local_kafka_port": busy}))
    with pytest.raises(PortInUse, match="TXSTREAM_LOCAL_KAFKA_PORT"):
        stack.up()
    stack = LocalStack(
        own_kafka_settings(tmp_path, isolated_settings).model_copy(update={"local_kafka_controller_port": busy})
    )
    with pytest.raises(PortInUse, match="TXSTREAM_LOCAL_KAFKA_CONTROLLER_PORT"):
        stack.up()


def test_a_postmaster_pid_reused_by_another_program_is_not_a_running_postgres(tmp_path):
    # Regression: running_port() trusted os.kill(pid, 0), so a stale postmaster.pid whose PID now
    # belongs to another process made `txstream up` say "already running" and start nothing.
    stack = LocalStack(Settings(data_dir=tmp_path, local_postgres_port=free_port(), kafka_bootstrap="unused:9092"))
    stack.up()
    stack.down()  # a data dir as a crash leaves it, but for the lock file
    postmaster_pid = stack.postgres.pgdata / "postmaster.pid"
    other = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)"])
    try:
        postmaster_pid.write_text(
            f"{other.pid}\n{stack.postgres.pgdata}\n1764000000\n{stack.settings.local_postgres_port}\n"
        )
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


def test_down_stops_everything_it_started(tmp_path, isolated_settings: Settings):
    settings = Settings(
        data_dir=tmp_path,
        jvm_dir=isolated_settings.jvm_lib_dir,
        local_postgres_port=free_port(),
        local_kafka_port=free_port(),
        local_kafka_controller_port=free_port(),
    )
    stack = LocalStack(settings)
    stack.up()
    pids = [
        stack.kafka.pid_file.live_process().pid,
        int((stack.postgres.pgdata / "postmaster.pid").read_text().split()[0]),
    ]
    assert stack.down() == ["Kafka stopped", "PostgreSQL stopped"]
    time.sleep(0.2)
    assert not any(psutil.pid_exists(pid) and psutil.Process(pid).status() != psutil.STATUS_ZOMBIE for pid in pids)
    assert stack.down() == []
    with pytest.raises(WarehouseUnavailable, match="embedded PostgreSQL is not answering.*`txstream up`"):
        warehouse(settings).fetch_one("SELECT 1")


def test_embedded_postgres_keeps_its_data_across_restarts(tmp_path):
    settings = Settings(data_dir=tmp_path, local_postgres_port=free_port(), kafka_bootstrap="unused:9092")
    stack = LocalStack(settings)
    stack.up()
    try:
        resource = warehouse(settings)
        upgrade_warehouse(resource, login_passwords(settings))
        resource.copy_rows("ops.source_cursors", ["source", "stream", "position"], [("s", "t", "{}")])
        stack.down()
        stack.up()
        assert resource.fetch_all("SELECT source FROM ops.source_cursors") == [("s",)]
    finally:
        stack.down()


# --- broken configuration fails fast and names the setting to fix -----------


def test_wrong_owner_password_names_the_setting(postgres: PostgresResource):
    bad = with_credentials(postgres.url.split("?", 1)[0], "txstream", "wrong-password")
    started = time.monotonic()
    with pytest.raises(WarehouseUnavailable, match="owner's user and password in TXSTREAM_POSTGRES_URL") as failure:
        upgrade_warehouse(PostgresResource(url=bad), {})
    assert time.monotonic() - started < 10
    assert "wrong-password" not in str(failure.value)
    assert "password authentication failed" in str(failure.value)


def test_unreachable_database_names_the_setting():
    started = time.monotonic()
    with pytest.raises(WarehouseUnavailable, match="TXSTREAM_POSTGRES_URL"):
        PostgresResource(url=f"postgresql://u:secret@127.0.0.1:{free_port()}/db", writer_password="pw").fetch_one(
            "SELECT 1"
        )
    assert time.monotonic() - started < 10


def test_malformed_database_url_is_refused_by_the_settings():
    with pytest.raises(ValueError, match="TXSTREAM_POSTGRES_URL=mysql://u:\\*\\*\\*@h/db"):
        Settings(postgres_url="mysql://u:secret@h/db")


def test_unreachable_broker_names_the_setting():
    started = time.monotonic()
    with pytest.raises(BrokerUnavailable, match="TXSTREAM_KAFKA_BOOTSTRAP"):
        kafka_resource(bootstrap=f"127.0.0.1:{free_port()}", topic="t", embedded=False).end_offsets()
    assert time.monotonic() - started < 15


def test_cli_reports_a_stopped_stack_clearly(tmp_path):
    env = {**os.environ, "TXSTREAM_DATA_DIR": str(tmp_path)}
    result = subprocess.run(["txstream", "status"], env=env, capture_output=True, text=True, timeout=60)
    assert result.returncode == 1
    # The terminal width decides where rich wraps the line (the data dir's path is long): read it unwrapped.
    assert "is not running: run `txstream up`" in " ".join(result.stdout.split())
    assert "Traceback" not in result.stdout + result.stderr
