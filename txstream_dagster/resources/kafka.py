"""The event log: the Kafka cluster and the topic carrying Stripe objects."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import closing, contextmanager
from typing import Any

import dagster as dg
from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer, TopicPartition
from kafka.admin import NewTopic
from kafka.errors import KafkaError, TopicAlreadyExistsError
from pydantic import Field, field_validator

from txstream_dagster.settings import check_compression_codec
from txstream_spark.event_contract import check_topic_name
from txstream_spark.kafka_topic import TopicDescription, admin_client, describe_topic

BOOTSTRAP_TIMEOUT_MS = 5_000


class BrokerUnavailable(RuntimeError):
    pass


class TopicNotFound(RuntimeError):
    pass


class KafkaResource(dg.ConfigurableResource):
    """Kafka cluster carrying the Stripe event topic.

    `resources/build.py` fills the fields from the settings: TXSTREAM_KAFKA_BOOTSTRAP, or
    the embedded Kafka that `txstream up` starts; the topic's name and the shape a new one
    gets; the producer's compression codec.
    """

    bootstrap: str
    topic: str
    partitions: int = Field(ge=1, description="Partitions of the topic when txstream creates it.")
    replication: int = Field(ge=1, description="Replication factor of the topic when txstream creates it.")
    compression: str = Field(description="Codec the producer compresses batches with: none, gzip, snappy, lz4, zstd.")
    embedded: bool = False  # the embedded Kafka: an unreachable broker says to run `txstream up`

    @field_validator("topic")
    @classmethod
    def _topic_is_a_kafka_name(cls, value: str) -> str:
        # Run config can set it, bypassing TXSTREAM_TOPIC's check.
        return check_topic_name(value, "The kafka resource's topic")

    @field_validator("compression")
    @classmethod
    def _codec_is_installed(cls, value: str) -> str:
        return check_compression_codec(value, "The kafka resource's compression")

    def for_topic(self, topic: str) -> KafkaResource:
        """The same cluster, another topic (every other field as it is here)."""
        fields = {name: getattr(self, name) for name in type(self).model_fields}
        return KafkaResource(**{**fields, "topic": topic})

    def _unreachable(self, exc: Exception) -> BrokerUnavailable:
        setting = (
            "the embedded Kafka (`txstream status`, then `txstream up`)"
            if self.embedded
            else "TXSTREAM_KAFKA_BOOTSTRAP and that the brokers are up"
        )
        return BrokerUnavailable(
            f"Cannot reach Kafka at {self.bootstrap}: {exc or type(exc).__name__}. Check {setting}."
        )

    @contextmanager
    def admin(self) -> Iterator[KafkaAdminClient]:
        try:
            client = admin_client(self.bootstrap, bootstrap_timeout_ms=BOOTSTRAP_TIMEOUT_MS, client_id="txstream-admin")
        except KafkaError as exc:
            raise self._unreachable(exc) from None
        try:
            yield client
        finally:
            client.close()

    def ensure_topic(self, partitions: int | None = None, replication: int | None = None) -> bool:
        """Create the topic, with `partitions` and `replication` unless told otherwise (explicitly:
        auto-creation is off, and would pick its own partition count). Returns False when it already existed."""
        with self.admin() as admin:
            try:
                admin.create_topics(
                    [NewTopic(self.topic, partitions or self.partitions, replication or self.replication)]
                )
            except TopicAlreadyExistsError:
                return False
        return True

    def describe_topic(self) -> TopicDescription:
        with self.admin() as admin:
            description = describe_topic(admin, self.topic)
        if description is None:
            raise TopicNotFound(
                f"Kafka topic {self.topic!r} does not exist on {self.bootstrap}: create it with "
                "`txstream up` (embedded) or `txstream topic create`, or fix TXSTREAM_TOPIC."
            )
        return description

    def end_offsets(self) -> dict[int, int]:
        """Partition → next offset to be written (Kafka's ListOffsets: the high watermark)."""
        partitions = self.describe_topic().partitions
        with closing(self.consumer()) as consumer:
            ends = consumer.end_offsets([TopicPartition(self.topic, p) for p in range(partitions)])
        return {tp.partition: offset for tp, offset in sorted(ends.items())}

    def consumer(self, **config: Any) -> KafkaConsumer:
        try:
            return KafkaConsumer(
                bootstrap_servers=self.bootstrap,
                bootstrap_timeout_ms=BOOTSTRAP_TIMEOUT_MS,
                enable_auto_commit=False,
                group_id=None,
                **config,
            )
        except KafkaError as exc:
            raise self._unreachable(exc) from None

    def producer(self, **config: Any) -> KafkaProducer:
        """An idempotent producer tuned for throughput: every send is acknowledged by all in-sync replicas,
        a retry after a lost acknowledgement is deduplicated by the broker, and each partition keeps its order.
        Compresses with `compression` (checked when the resource is built: its package is installed)."""
        defaults: dict[str, Any] = {
            "acks": "all",
            "enable_idempotence": True,
            # The most an idempotent producer may have in flight per connection and still keep order.
            "max_in_flight_requests_per_connection": 5,
            "retries": 2**31 - 1,
            "delivery_timeout_ms": 120_000,
            "linger_ms": 20,
            "batch_size": 512 * 1024,
            "compression_type": None if self.compression == "none" else self.compression,
            "max_request_size": 4 * 1024 * 1024,
            "allow_auto_create_topics": False,
        }
        try:
            return KafkaProducer(
                bootstrap_servers=self.bootstrap,
                bootstrap_timeout_ms=BOOTSTRAP_TIMEOUT_MS,
                client_id="txstream-producer",
                **{**defaults, **config},
            )
        except KafkaError as exc:
            raise self._unreachable(exc) from None
