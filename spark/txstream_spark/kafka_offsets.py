"""Reading a topic's shape and end offsets with kafka-python, in a way every broker answers right.

Tansu (the embedded broker) answers ListOffsets with a wrong end offset (the
first offset of the last batch + 1); the high watermark that comes back with
fetched records is right on every broker. So end offsets are read by assigning
the partitions, fetching from near the end and reading `highwater()`.
"""

from __future__ import annotations

import time
from collections.abc import Mapping

from kafka import KafkaConsumer, TopicPartition


class TopicNotFound(RuntimeError):
    pass


class DataLossError(RuntimeError):
    """Offsets the stream planned to read are gone: the topic was deleted, recreated or truncated."""


def end_offsets_consumer(bootstrap: str, client_options: Mapping | None = None) -> KafkaConsumer:
    return KafkaConsumer(
        bootstrap_servers=bootstrap,
        enable_auto_commit=False,
        group_id=None,
        max_partition_fetch_bytes=1024,
        fetch_max_wait_ms=10,
        request_timeout_ms=10_000,
        **(client_options or {}),
    )


def partitions_of(consumer: KafkaConsumer, topic: str) -> list[int]:
    partitions = consumer.partitions_for_topic(topic)  # asks the cluster when not cached
    if not partitions:
        raise TopicNotFound(
            f"Kafka topic {topic!r} does not exist on {consumer.config['bootstrap_servers']}: "
            "create it with `txstream up` (embedded) or `txstream topic create`, or fix TXSTREAM_TOPIC."
        )
    return sorted(partitions)


def end_offsets(consumer: KafkaConsumer, topic: str, timeout: float = 15.0) -> dict[int, int]:
    """Partition → end offset (the next offset to be written), from fetch high watermarks."""
    partitions = [TopicPartition(topic, p) for p in partitions_of(consumer, topic)]
    # A consumer reused between calls keeps each partition's last high watermark (and may have
    # prefetched more): drop the assignment so only fresh fetches count.
    consumer.unsubscribe()
    consumer.assign(partitions)
    # Start from the broker's (possibly low) end offset so the fetch is tiny.
    consumer.seek_to_end(*partitions)
    known: dict[int, int] = {}
    deadline = time.monotonic() + timeout
    while len(known) < len(partitions):
        consumer.poll(timeout_ms=200, max_records=1)
        for tp in partitions:
            highwater = consumer.highwater(tp)
            if highwater is not None:
                known[tp.partition] = highwater
        if time.monotonic() > deadline:
            missing = sorted({tp.partition for tp in partitions} - known.keys())
            raise TimeoutError(
                f"Kafka returned no high watermark for {topic} partitions {missing} within {timeout:.0f} s"
            )
    return known


def topic_id(bootstrap: str, topic: str, admin=None) -> str | None:
    """The id of the topic's current incarnation (a deleted and recreated topic gets a new one); None if absent."""
    from kafka import KafkaAdminClient

    own = admin is None
    admin = admin or KafkaAdminClient(bootstrap_servers=bootstrap, bootstrap_timeout_ms=10_000)
    try:
        [description] = admin.describe_topics([topic])
    finally:
        if own:
            admin.close()
    return str(description["topic_id"]) if description["error_code"] == 0 else None


class TopicIncarnation:
    """Asks for a topic's current id, keeping one admin connection between calls."""

    def __init__(self, bootstrap: str, topic: str):
        self.bootstrap = bootstrap
        self.topic = topic
        self._admin = None

    def __call__(self) -> str | None:
        from kafka import KafkaAdminClient

        try:
            self._admin = self._admin or KafkaAdminClient(bootstrap_servers=self.bootstrap, bootstrap_timeout_ms=10_000)
            return topic_id(self.bootstrap, self.topic, self._admin)
        except Exception:
            self.close()
            raise

    def close(self) -> None:
        if self._admin is not None:
            self._admin.close()
            self._admin = None
