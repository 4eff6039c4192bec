"""The stream sensor against the real broker and PostgreSQL (no Spark: what lands is simulated by the sink)."""

from __future__ import annotations

import contextlib

import dagster as dg
import orjson
from kafka import TopicPartition

from resource_helpers import spark_resource
from stream_helpers import Message, land_messages
from stripe_helpers import stripe_fixture
from txstream_dagster.defs.stream.jobs import stream_continuous_job
from txstream_dagster.defs.stream.sensors import next_cursor, stream_lag_sensor
from txstream_dagster.resources import KafkaResource, PostgresResource
from txstream_spark.event_contract import message_headers
from txstream_spark.sink import claim_writer_lock


def publish(kafka: KafkaResource, count: int) -> None:
    producer = kafka.producer()
    for i in range(count):
        obj = {**stripe_fixture("charge"), "id": f"ch_sensor_{kafka.topic}_{i}"}
        producer.send(
            kafka.topic,
            key=obj["id"].encode(),
            value=orjson.dumps(obj),
            headers=message_headers("charge", "synthetic", 1_700_000_000_000 + i),
        )
    producer.flush()
    producer.close()


def land_everything(kafka: KafkaResource, postgres: PostgresResource, conn=None) -> None:
    """What a finished catch-up run leaves behind: every message landed, offsets committed (through `conn`,
    a writer's session, when given)."""
    ends = kafka.end_offsets()
    consumer = kafka.consumer()
    partitions = [TopicPartition(kafka.topic, p) for p in ends]
    consumer.assign(partitions)
    consumer.seek_to_beginning(*partitions)
    messages = []
    while len(messages) < sum(ends.values()):
        for records in consumer.poll(timeout_ms=1000).values():
            messages += [
                Message(value=r.value, key=r.key, headers=r.headers, partition=r.partition, offset=r.offset)
                for r in records
            ]
    consumer.close()
    land_messages(postgres, messages, topic=kafka.topic, topic_id=kafka.describe_topic().topic_id, conn=conn)


def tick(kafka, postgres, spark, cursor=None, instance=None):
    with contextlib.ExitStack() as stack:
        if instance is None:
            instance = stack.enter_context(dg.instance_for_test())
        context = dg.build_sensor_context(
            cursor=cursor, instance=instance, resources={"kafka": kafka, "postgres": postgres, "spark": spark}
        )
        return stream_lag_sensor(context)


def test_lag_requests_one_catch_up_run_and_observes_the_topic(clean_warehouse, kafka, tmp_path):
    spark = spark_resource(checkpoint_root=str(tmp_path), mode="catch-up")
    publish(kafka, 40)

    result = tick(kafka, clean_warehouse, spark)

    [run] = result.run_requests
    assert run.job_name == "stream_catch_up"
    assert run.tags["txstream/lag"] == "40"
    [observation] = result.asset_events
    assert observation.asset_key == dg.AssetKey("stripe_events_topic")
    assert observation.metadata["messages"].value == 40
    lag_rows = clean_warehouse.fetch_all(
        "SELECT sum(end_offset), sum(committed_offset) FROM ops.stream_lag WHERE kafka_topic = %s", [kafka.topic]
    )
    assert lag_rows == [(40, 0)]


def test_once_everything_has_landed_the_sensor_skips(clean_warehouse, kafka, tmp_path):
    spark = spark_resource(checkpoint_root=str(tmp_path), mode="catch-up")
    publish(kafka, 25)
    first = tick(kafka, clean_warehouse, spark)
    land_everything(kafka, clean_warehouse)

    second = tick(kafka, clean_warehouse, spark, cursor=first.cursor)

    assert isinstance(second, dg.SkipReason)
    assert "lag 0" in second.skip_message


def test_the_continuous_stream_is_started_when_none_runs_even_with_nothing_to_land(clean_warehouse, kafka, tmp_path):
    spark = spark_resource(checkpoint_root=str(tmp_path))  # continuous: the default mode

    result = tick(kafka, clean_warehouse, spark)

    [run] = result.run_requests
    assert run.job_name == "stream_continuous"
    [check] = [e for e in result.asset_events if isinstance(e, dg.AssetCheckEvaluation)]
    assert (check.check_name, check.passed) == ("stream_is_running", False)
    assert "starts the continuous run again" in check.description


def test_no_second_stream_is_started_while_one_is_starting_or_just_failed(clean_warehouse, kafka, tmp_path):
    spark = spark_resource(checkpoint_root=str(tmp_path))
    with dg.instance_for_test() as instance:
        starting = instance.create_run_for_job(stream_continuous_job, tags={"txstream/stream": "continuous"})
        instance.report_run_canceling(starting)  # unfinished: still holding its place
        assert tick(kafka, clean_warehouse, spark, instance=instance).run_requests == []

        instance.report_run_failed(instance.get_run_by_id(starting.run_id))
        backing_off = tick(kafka, clean_warehouse, spark, instance=instance)
        assert isinstance(backing_off, dg.SkipReason)
        assert "failed less than 60 s ago" in backing_off.skip_message


def test_a_running_stream_is_reported_not_competed_with(clean_warehouse, kafka, tmp_path):
    spark = spark_resource(checkpoint_root=str(tmp_path))
    publish(kafka, 10)
    first = tick(kafka, clean_warehouse, spark)
    with clean_warehouse.connect() as stream_session:  # the continuous stream's, holding the topic's writer lock
        assert claim_writer_lock(stream_session, kafka.topic, "continuous")
        land_everything(kafka, clean_warehouse, conn=stream_session)
        publish(kafka, 5)  # more arrives while the continuous stream runs

        second = tick(kafka, clean_warehouse, spark, cursor=first.cursor)
        third = tick(kafka, clean_warehouse, spark, cursor=second.cursor)

    assert second.run_requests == []
    materializations = [e for e in second.asset_events if isinstance(e, dg.AssetMaterialization)]
    assert [m.asset_key for m in materializations] == [dg.AssetKey("raw_transactions")]
    assert materializations[0].metadata["messages_landed"].value == 10
    [check] = [e for e in second.asset_events if isinstance(e, dg.AssetCheckEvaluation)]
    assert (check.check_name, check.passed) == ("stream_is_running", True)
    # Nothing more landed and the stream still runs: nothing to report (the topic's growth was observed).
    assert isinstance(third, dg.SkipReason)


def test_cursor_remembers_end_offsets_committed_total_and_whether_a_stream_ran():
    before, now = next_cursor(None, {1: 5, 0: 3}, committed_total=2, running=True)
    assert before == {"end_offsets": {}, "committed_total": None, "running": None}
    assert now == {"end_offsets": {"0": 3, "1": 5}, "committed_total": 2, "running": True}
    again, _ = next_cursor(orjson.dumps(now).decode(), {0: 3, 1: 5}, 8, running=False)
    assert again == now
