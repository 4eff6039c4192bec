"""The event log: Kafka (TXSTREAM_KAFKA_BOOTSTRAP) or the embedded Apache Kafka."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import closing, contextmanager
from typing import Any

import dagster as dg
from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer, TopicPartition
from kafka.admin import NewTopic
from kafka.errors import KafkaError, TopicAlreadyExistsError
from pydantic import field_validator

from txstream_dagster.local_stack import LocalStack
from txstream_dagster.settings import get_settings
from txstream_spark.event_contract import check_topic_name
from txstream_spark.kafka_topic import TopicDescription, admin_client, describe_topic

BOOTSTRAP_TIMEOUT_MS = 5_000


class BrokerUnavailable(RuntimeError):
    pass


class TopicNotFound(RuntimeError):
    pass


class KafkaResource(dg.ConfigurableResource):
    """Kafka cluster carrying the Stripe event topic.

    `bootstrap` comes from TXSTREAM_KAFKA_BOOTSTRAP; unset means the embedded
    Kafka that `txstream up` started.
    """

    bootstrap: str | None = None
    topic: str = "stripe.events"

    @field_validator("topic")
    @classmethod
    def _topic_is_a_kafka_name(cls, value: str) -> str:
        # Run config can set it, bypassing TXSTREAM_TOPIC's check.
        return check_topic_name(value, "The kafka resource's topic")

    def resolved_bootstrap(self) -> str:
        return self.bootstrap or LocalStack(get_settings()).kafka_bootstrap()

    def _unreachable(self, exc: Exception) -> BrokerUnavailable:
        setting = (
            "the embedded Kafka (`txstream status`, then `txstream up`)"
            if not self.bootstrap and not get_settings().kafka_bootstrap
            else "TXSTREAM_KAFKA_BOOTSTRAP and that the brokers are up"
        )
        return BrokerUnavailable(
            f"Cannot reach Kafka at {self.resolved_bootstrap()}: {exc or type(exc).__name__}. Check {setting}."
        )

    @contextmanager
    def admin(self) -> Iterator[KafkaAdminClient]:
        try:
            client = admin_client(self.resolved_bootstrap(), bootstrap_timeout_ms=BOOTSTRAP_TIMEOUT_MS,
                                  client_id="txstream-admin")
        except KafkaError as exc:
            raise self._unreachable(exc) from None
        try:
            yield client
        finally:
            client.close()

    def ensure_topic(self, partitions: int, replication: int) -> bool:
        """Create the topic (explicitly: auto-creation is off, and would pick its own partition count).
        Returns False when it already existed."""
        with self.admin() as admin:
            try:
                admin.create_topics([NewTopic(self.topic, partitions, replication)])
            except TopicAlreadyExistsError:
                return False
        return True

    def describe_topic(self) -> TopicDescription:
        with self.admin() as admin:
            description = describe_topic(admin, self.topic)
        if description is None:
            raise TopicNotFound(
                f"Kafka topic {self.topic!r} does not exist on {self.resolved_bootstrap()}: create it with "
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
                bootstrap_servers=self.resolved_bootstrap(),
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
        Compresses with TXSTREAM_PRODUCER_COMPRESSION (checked by the settings: its package is installed)."""
        compression = get_settings().producer_compression
        defaults: dict[str, Any] = {
            "acks": "all",
            "enable_idempotence": True,
            # The most an idempotent producer may have in flight per connection and still keep order.
            "max_in_flight_requests_per_connection": 5,
            "retries": 2**31 - 1,
            "delivery_timeout_ms": 120_000,
            "linger_ms": 20,
            "batch_size": 512 * 1024,
            "compression_type": None if compression == "none" else compression,
            "max_request_size": 4 * 1024 * 1024,
            "allow_auto_create_topics": False,
        }
        try:
            return KafkaProducer(
                bootstrap_servers=self.resolved_bootstrap(),
                bootstrap_timeout_ms=BOOTSTRAP_TIMEOUT_MS,
                client_id="txstream-producer",
                **{**defaults, **config},
            )
        except KafkaError as exc:
            raise self._unreachable(exc) from None
