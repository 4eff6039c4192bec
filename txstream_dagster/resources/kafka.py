"""The event log: Kafka (TXSTREAM_KAFKA_BOOTSTRAP) or the embedded broker."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import dagster as dg
from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer
from kafka.admin import NewTopic
from kafka.errors import KafkaError, TopicAlreadyExistsError
from pydantic import field_validator

from txstream_dagster.local_stack import LocalStack
from txstream_dagster.settings import get_settings
from txstream_spark.event_contract import check_topic_name
from txstream_spark.kafka_offsets import end_offsets, end_offsets_consumer

BOOTSTRAP_TIMEOUT_MS = 5_000


class BrokerUnavailable(RuntimeError):
    pass


@dataclass(frozen=True)
class TopicInfo:
    name: str
    topic_id: str
    partitions: int


class KafkaResource(dg.ConfigurableResource):
    """Kafka cluster carrying the Stripe event topic.

    `bootstrap` comes from TXSTREAM_KAFKA_BOOTSTRAP; unset means the embedded
    broker that `txstream up` started.
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
            "the embedded broker (`txstream status`, then `txstream up`)"
            if not self.bootstrap and not get_settings().kafka_bootstrap
            else "TXSTREAM_KAFKA_BOOTSTRAP and that the brokers are up"
        )
        return BrokerUnavailable(
            f"Cannot reach Kafka at {self.resolved_bootstrap()}: {exc or type(exc).__name__}. Check {setting}."
        )

    @contextmanager
    def admin(self) -> Iterator[KafkaAdminClient]:
        try:
            client = KafkaAdminClient(
                bootstrap_servers=self.resolved_bootstrap(),
                bootstrap_timeout_ms=BOOTSTRAP_TIMEOUT_MS,
                request_timeout_ms=10_000,
                client_id="txstream-admin",
            )
        except KafkaError as exc:
            raise self._unreachable(exc) from None
        try:
            yield client
        finally:
            client.close()

    def ensure_topic(self, partitions: int, replication: int) -> bool:
        """Create the topic (explicitly: brokers that auto-create pick their own partition count).
        Returns False when it already existed."""
        with self.admin() as admin:
            try:
                admin.create_topics([NewTopic(self.topic, partitions, replication)])
            except TopicAlreadyExistsError:
                return False
        return True

    def describe_topic(self) -> TopicInfo:
        with self.admin() as admin:
            [description] = admin.describe_topics([self.topic])
        if description["error_code"] != 0:
            raise RuntimeError(
                f"Kafka topic {self.topic!r} is not available on {self.resolved_bootstrap()} "
                f"(error code {description['error_code']}): create it with `txstream topic create`."
            )
        return TopicInfo(self.topic, str(description["topic_id"]), len(description["partitions"]))

    def end_offsets(self) -> dict[int, int]:
        """Partition → next offset to be written (from fetch high watermarks; see kafka_offsets)."""
        try:
            consumer = end_offsets_consumer(
                self.resolved_bootstrap(), {"bootstrap_timeout_ms": BOOTSTRAP_TIMEOUT_MS}
            )
        except KafkaError as exc:
            raise self._unreachable(exc) from None
        try:
            return end_offsets(consumer, self.topic)
        finally:
            consumer.close()

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
        """A producer tuned for throughput; every send is acknowledged by all in-sync replicas.
        Compresses with TXSTREAM_PRODUCER_COMPRESSION (checked by the settings: its package is installed)."""
        compression = get_settings().producer_compression
        defaults: dict[str, Any] = {
            "acks": "all",
            "linger_ms": 20,
            "batch_size": 512 * 1024,
            "compression_type": None if compression == "none" else compression,
            "max_request_size": 4 * 1024 * 1024,
            # Brokers that auto-create pick their own partition count: topics are created explicitly.
            "allow_auto_create_topics": False,
            # kafka-python's idempotent producer dies for good after a broker restart
            # (UnknownProducerIdError); retries + per-key ordering come from max_in_flight=1.
            "enable_idempotence": False,
            "max_in_flight_requests_per_connection": 1,
            "retries": 2**31 - 1,
            "delivery_timeout_ms": 120_000,
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
