"""The embedded Kafka's configuration, as pure functions: what `txstream up` writes before starting it."""

from __future__ import annotations

import base64
from pathlib import Path

from txstream_dagster.dev.embedded_kafka import Retention, new_cluster_id, server_properties

RETENTION = Retention(hours=168, bytes_per_partition=1024**3)


def properties(**overrides) -> dict[str, str]:
    arguments = dict(
        node_id=1,
        port=9092,
        controller_port=9093,
        voters="1@127.0.0.1:9093",
        log_dir=Path("/data/kafka"),
        retention=RETENTION,
    )
    return server_properties(**{**arguments, **overrides})


def test_one_node_is_broker_and_controller_on_loopback_only():
    config = properties()
    assert config["process.roles"] == "broker,controller"
    assert config["listeners"] == "PLAINTEXT://127.0.0.1:9092,CONTROLLER://127.0.0.1:9093"
    assert config["advertised.listeners"] == "PLAINTEXT://127.0.0.1:9092"
    assert config["controller.quorum.voters"] == "1@127.0.0.1:9093"
    assert config["log.dirs"] == "/data/kafka"


def test_topics_are_never_created_by_accident():
    assert properties()["auto.create.topics.enable"] == "false"


def test_retention_is_by_age_and_by_size_with_segments_small_enough_for_the_size_to_bite():
    config = properties(retention=Retention(hours=24, bytes_per_partition=32 * 1024**2))
    assert (config["log.retention.hours"], config["log.retention.bytes"]) == ("24", str(32 * 1024**2))
    # Only closed segments are deleted: a segment as large as the limit would let a partition grow to twice it.
    assert int(config["log.segment.bytes"]) <= 32 * 1024**2
    assert int(properties()["log.segment.bytes"]) == 64 * 1024**2  # 1 GiB of retention: 64 MiB segments


def test_a_three_node_cluster_replicates_three_times_and_needs_two_in_sync():
    config = properties(replication=3, voters="1@127.0.0.1:1,2@127.0.0.1:2,3@127.0.0.1:3")
    assert config["default.replication.factor"] == config["offsets.topic.replication.factor"] == "3"
    assert config["min.insync.replicas"] == config["transaction.state.log.min.isr"] == "2"
    single = properties()
    assert (single["default.replication.factor"], single["min.insync.replicas"]) == ("1", "1")


def test_cluster_ids_are_kafka_uuids_that_no_command_line_mistakes_for_an_option():
    # Regression: an id starting with "-" made `kafka-storage format --cluster-id <id>` fail.
    for _ in range(2_000):
        cluster_id = new_cluster_id()
        assert not cluster_id.startswith("-")
        assert len(base64.urlsafe_b64decode(cluster_id + "==")) == 16
