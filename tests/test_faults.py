"""Faults across components: the broker restarting under a running producer and stream.

(Killing the Spark job and restarting PostgreSQL are in test_stream_job.py; Stripe
429/500s in test_stripe_api_ingestion.py; forex API failures in test_forex_*.py.)
"""

from __future__ import annotations

import os
import signal
import subprocess
import threading
import time
from itertools import islice

import pytest

from stream_helpers import batch_totals, wait_for
from txstream_dagster.defs.stream.offsets import committed_offsets
from txstream_dagster.defs.stream.resources import SparkResource
from txstream_dagster.defs.stripe_source.production import publish_synthetic
from txstream_dagster.defs.stripe_source.publisher import encode
from txstream_dagster.defs.stripe_source.synthetic_charges import SyntheticStripe
from txstream_dagster.resources import KafkaResource, PostgresResource

pytestmark = pytest.mark.slow

RATE = 250  # messages per second


def landed(postgres: PostgresResource) -> int:
    return postgres.fetch_one("SELECT count(*) FROM raw.transactions")[0]


def test_a_broker_restart_loses_nothing_the_producer_had_acknowledged(
    clean_warehouse: PostgresResource, kafka: KafkaResource, local_stack, tmp_path
):
    spark = SparkResource(master="local[2]", kafka_source="python", checkpoint_root=str(tmp_path / "checkpoints"))
    command = spark.submit_command(bootstrap=kafka.resolved_bootstrap(), topic=kafka.topic, trigger="processing-time",
                                   fail_on_data_loss=False, interval="500 milliseconds")
    stream = subprocess.Popen(command, env={**os.environ, **spark.job_env(clean_warehouse.resolved_url())},
                              start_new_session=True, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    now_ms = int(time.time() * 1000)
    stop = threading.Event()
    produced = {}
    producer = threading.Thread(target=lambda: produced.update(summary=publish_synthetic(
        kafka, seed=21, rate=RATE, stop=stop, now_ms=now_ms, postgres=clean_warehouse)))
    producer.start()
    try:
        wait_for(lambda: landed(clean_warehouse) > 500, 180, "the stream to land the first events")
        topic_before = kafka.describe_topic().topic_id

        local_stack.broker.stop()  # the embedded broker keeps everything in memory: the topic is gone
        time.sleep(3)
        local_stack.broker.start()
        time.sleep(8)  # the producer blocks, retries, finds the topic recreated, resends what was not landed
        stop.set()
        producer.join(120)
        assert not producer.is_alive()

        assert kafka.describe_topic().topic_id != topic_before
        summary = produced["summary"]
        acknowledged = [encode(v, "synthetic") for v in islice(SyntheticStripe(21).stream(now_ms, RATE), summary.messages)]
        latest = {}
        for message in acknowledged:
            latest[message.key.decode()] = message
        wait_for(lambda: landed(clean_warehouse) >= len(latest), 240, "every acknowledged object to land")
        wait_for(lambda: committed_offsets(clean_warehouse, kafka.topic).total >= sum(kafka.end_offsets().values()),
                 120, "the stream to read the recreated topic to its end")
    finally:
        stop.set()
        os.killpg(stream.pid, signal.SIGTERM)
        output, _ = stream.communicate(timeout=60)
        print(output[-6000:])  # shown when the test fails

    assert summary.resent > 0, "nothing had to be sent again: the restart did not hit the producer"
    held = dict(clean_warehouse.fetch_all("SELECT object_id, payload FROM raw.transactions"))
    assert held.keys() == latest.keys()  # nothing acknowledged is lost, nothing else appears
    import orjson

    assert all(held[object_id] == orjson.loads(m.value) for object_id, m in latest.items())
    consumed, accounted, inserted, _ = batch_totals(clean_warehouse)
    assert consumed == accounted
    assert inserted == len(latest)  # each object inserted once: resent copies were duplicates
