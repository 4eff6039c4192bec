"""The event topic as Kafka's admin API describes it: whether it exists, its id, its partitions.

A topic deleted and created again under the same name is another topic to Kafka: a new
topic id, offsets from 0. Spark's checkpoint knows only names and offsets, so the id is
how txstream tells the incarnations apart (see `TopicWatch`).
"""

from __future__ import annotations

from dataclasses import dataclass

from kafka import KafkaAdminClient


@dataclass(frozen=True)
class TopicDescription:
    name: str
    topic_id: str
    partitions: int


class TopicRecreated(RuntimeError):
    """The topic the stream reads was deleted (and maybe created again) under it."""


def describe_topic(admin: KafkaAdminClient, topic: str) -> TopicDescription | None:
    """The topic as the cluster has it now; None when it does not exist."""
    [description] = admin.describe_topics([topic])
    if description["error_code"] != 0:
        return None
    return TopicDescription(topic, str(description["topic_id"]), len(description["partitions"]))


def admin_client(bootstrap: str, **config) -> KafkaAdminClient:
    return KafkaAdminClient(
        bootstrap_servers=bootstrap, **{"bootstrap_timeout_ms": 10_000, "request_timeout_ms": 10_000, **config}
    )


class TopicWatch:
    """Checks, batch after batch, that the topic is still the one the stream started on (one admin connection)."""

    def __init__(self, bootstrap: str, topic: str, topic_id: str):
        self.bootstrap = bootstrap
        self.topic = topic
        self.topic_id = topic_id
        self._admin: KafkaAdminClient | None = None

    def check(self) -> None:
        try:
            self._admin = self._admin or admin_client(self.bootstrap, client_id="txstream-stream-topic-watch")
            now = describe_topic(self._admin, self.topic)
        except Exception:
            self.close()
            raise
        if now is None or now.topic_id != self.topic_id:
            what = (
                "was deleted" if now is None else f"was deleted and created again (id {self.topic_id} → {now.topic_id})"
            )
            raise TopicRecreated(
                f"Kafka topic {self.topic!r} {what} while the stream read it: the batch in flight was not applied. "
                "The checkpoint's offsets belong to the old topic; to read the new one from its start, run "
                "`txstream stream reset` (the rows already landed stay)."
            )

    def close(self) -> None:
        if self._admin is not None:
            self._admin.close()
            self._admin = None
