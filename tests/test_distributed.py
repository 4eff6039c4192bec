"""The distributed path, on one machine: a 3-broker KRaft cluster on loopback and Spark standalone.

This is what docker-compose.yml and the Helm values describe (brokers that replicate
each other, executors on workers, the driver elsewhere), started as separate local
processes: three Kafka nodes that are brokers and controllers (replication factor 3,
min.insync.replicas 2), a Spark master and a worker started with pyspark's own
`spark-class`. One broker is killed mid-stream; every event must land exactly once.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
import requests

from resource_helpers import kafka_resource, spark_resource
from stream_helpers import (
    SyntheticStream,
    assert_landed_exactly_once,
    caught_up,
    landed_ids,
    start_stream_job,
    stop_stream,
    wait_for,
)
from txstream_dagster.dev.embedded_kafka import KafkaNode, Retention, new_cluster_id
from txstream_dagster.dev.processes import free_port
from txstream_dagster.resources import KafkaResource, PostgresResource
from txstream_dagster.resources.kafka import BrokerUnavailable
from txstream_dagster.settings import Settings

pytestmark = pytest.mark.slow

BROKERS = 3
RATE = 250  # messages per second


@pytest.fixture(scope="module")
def kafka_cluster(tmp_path_factory: pytest.TempPathFactory, isolated_settings: Settings):
    root = tmp_path_factory.mktemp("kafka-cluster")
    ports = [(free_port(), free_port()) for _ in range(BROKERS)]
    voters = ",".join(f"{n}@127.0.0.1:{controller}" for n, (_, controller) in enumerate(ports, start=1))
    cluster_id = new_cluster_id()
    nodes = [
        KafkaNode(
            root / f"node-{n}",
            isolated_settings.jvm_lib_dir,
            port=port,
            controller_port=controller,
            retention=Retention(hours=1, bytes_per_partition=64 * 1024**2),
            node_id=n,
            voters=voters,
            cluster_id=cluster_id,
            replication=BROKERS,
        )
        for n, (port, controller) in enumerate(ports, start=1)
    ]
    try:
        for node in nodes:  # a quorum needs a majority of its voters up before any of them serves
            node.start(wait=False)
        for node in nodes:
            node.wait_until_ready()
        yield nodes
    finally:
        for node in nodes:
            node.stop()


class SparkStandalone:
    """A Spark master and one worker, each a `spark-class` process of the installed pyspark."""

    def __init__(self, root: Path):
        self.root = root
        self.port, self.ui_port, self.worker_ui_port = free_port(), free_port(), free_port()
        self.processes: list[subprocess.Popen] = []

    @property
    def url(self) -> str:
        return f"spark://127.0.0.1:{self.port}"

    def _spark_class(self, name: str, *args: str) -> None:
        spark_class = Path(sys.executable).parent / "spark-class"
        env = {**os.environ, "SPARK_LOCAL_IP": "127.0.0.1", "SPARK_WORKER_DIR": str(self.root / "work")}
        log = open(self.root / f"{name.rsplit('.', 1)[-1].lower()}.log", "wb")  # noqa: SIM115 - the process keeps it
        self.processes.append(
            subprocess.Popen([str(spark_class), name, *args], env=env, stdout=log, stderr=log, start_new_session=True)
        )

    def start(self) -> None:
        self._spark_class(
            "org.apache.spark.deploy.master.Master",
            "--host",
            "127.0.0.1",
            "--port",
            str(self.port),
            "--webui-port",
            str(self.ui_port),
        )
        wait_for(lambda: self.state() is not None, 90, "the Spark master's UI")
        self._spark_class(
            "org.apache.spark.deploy.worker.Worker",
            "--host",
            "127.0.0.1",
            "--cores",
            "2",
            "--memory",
            "2g",
            "--webui-port",
            str(self.worker_ui_port),
            self.url,
        )
        wait_for(lambda: (self.state() or {}).get("aliveworkers") == 1, 90, "the worker to register with the master")

    def state(self) -> dict | None:
        try:
            return requests.get(f"http://127.0.0.1:{self.ui_port}/json/", timeout=2).json()
        except (requests.RequestException, ValueError):
            return None

    def stop(self) -> None:
        for process in reversed(self.processes):
            process.terminate()
            try:
                process.wait(30)
            except subprocess.TimeoutExpired:
                process.kill()


@pytest.fixture(scope="module")
def spark_standalone(tmp_path_factory: pytest.TempPathFactory):
    cluster = SparkStandalone(tmp_path_factory.mktemp("spark-standalone"))
    try:
        cluster.start()
        yield cluster
    finally:
        cluster.stop()


def caught_up_after_failover(postgres: PostgresResource, kafka: KafkaResource) -> bool:
    """`caught_up`, asked of a cluster that is electing new leaders: on two cores, with three brokers and
    Spark beside them, a client can fail to bootstrap within its 5 s while that goes on. That is the
    test's own client, not the stream (which must ride it out: asserted after); ask again."""
    try:
        return caught_up(postgres, kafka)
    except BrokerUnavailable:
        return False


def test_a_broker_killed_mid_stream_loses_and_duplicates_nothing_on_a_cluster(
    clean_warehouse: PostgresResource, kafka_cluster: list[KafkaNode], spark_standalone: SparkStandalone, tmp_path
):
    kafka = kafka_resource(bootstrap=",".join(node.bootstrap for node in kafka_cluster), topic="test.distributed")
    kafka.ensure_topic(partitions=6, replication=BROKERS)
    with kafka.admin() as admin:
        [description] = admin.describe_topics([kafka.topic])
    assert all(len(p["replica_nodes"]) == len(p["isr_nodes"]) == BROKERS for p in description["partitions"])
    spark = spark_resource(master=spark_standalone.url, checkpoint_root=str(tmp_path / "checkpoints"))
    stream = start_stream_job(spark, kafka, clean_warehouse, "processing-time", "1 second")
    producer = SyntheticStream(kafka, seed=33, rate=RATE)
    try:
        wait_for(lambda: len(landed_ids(clean_warehouse)) > 500, 240, "the stream to land the first events")
        kafka_cluster[1].kill()  # kill -9 of a broker that leads some partitions and votes in the quorum
        time.sleep(8)  # producing and streaming go on with the two left (min.insync.replicas = 2)
        producer.finish()
        wait_for(lambda: caught_up_after_failover(clean_warehouse, kafka), 240, "the stream to land everything")
        assert stream.poll() is None, "the stream did not ride out the broker's death"
        apps = (spark_standalone.state() or {}).get("activeapps", [])
        assert any(app["name"].startswith("txstream-stream[") for app in apps)  # on the cluster, not local
    finally:
        producer.stop.set()
        stop_stream(stream)
        kafka_cluster[1].start()

    assert_landed_exactly_once(clean_warehouse, kafka, producer)
