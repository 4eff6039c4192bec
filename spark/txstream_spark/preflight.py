"""Checks the job makes before it reads a message, so a missing dependency fails in seconds, clearly."""

from __future__ import annotations

from dataclasses import dataclass

import psycopg

from txstream_spark.kafka_topic import TopicDescription, admin_client, describe_topic
from txstream_spark.redaction import redact_url
from txstream_spark.rows import one_row


class PreflightError(RuntimeError):
    pass


def connect(url: str, **kwargs) -> psycopg.Connection:
    try:
        return psycopg.connect(url, connect_timeout=5, application_name="txstream-stream", **kwargs)
    except psycopg.Error as exc:
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise PreflightError(
            f"Cannot connect to PostgreSQL {redact_url(url)} (TXSTREAM_POSTGRES_URL): {reason}"
        ) from None


def _regclass(conn: psycopg.Connection, table: str) -> str | None:
    return one_row(conn.execute("SELECT to_regclass(%s)", [table]).fetchone())[0]


def check_warehouse(url: str) -> None:
    with connect(url) as conn:
        missing = [
            table
            for table in ("raw.transactions", "raw.quarantined_events", "ops.stream_offsets", "ops.stream_batches")
            if _regclass(conn, table) is None
        ]
    if missing:
        raise PreflightError(f"PostgreSQL {redact_url(url)} has no {', '.join(missing)}: run `txstream migrate` first.")


def check_broker(bootstrap: str, topic: str) -> TopicDescription:
    """The topic as the cluster has it now; PreflightError when the cluster or the topic is not there."""
    from kafka.errors import KafkaError

    try:
        admin = admin_client(bootstrap, bootstrap_timeout_ms=5_000, client_id="txstream-stream-preflight")
    except KafkaError as exc:
        raise PreflightError(f"Cannot reach Kafka at {bootstrap} (TXSTREAM_KAFKA_BOOTSTRAP): {exc}") from None
    try:
        description = describe_topic(admin, topic)
    finally:
        admin.close()
    if description is None:
        raise PreflightError(
            f"Kafka topic {topic!r} does not exist on {bootstrap}: create it (`txstream up` or "
            "`txstream topic create`) or fix TXSTREAM_TOPIC."
        )
    return description


@dataclass(frozen=True)
class LandedOffsets:
    """What PostgreSQL says the stream has landed of a topic: the incarnation (topic id) and, per
    partition, the next offset to read. Written in the same transaction as the rows."""

    topic_id: str | None
    next_offsets: dict[int, int]

    @property
    def total(self) -> int:
        return sum(self.next_offsets.values())


def read_landed_offsets(conn: psycopg.Connection, topic: str) -> LandedOffsets:
    rows = conn.execute(
        "SELECT kafka_partition, next_offset, kafka_topic_id FROM ops.stream_offsets WHERE kafka_topic = %s",
        [topic],
    ).fetchall()
    topic_ids = {topic_id for _, _, topic_id in rows}
    return LandedOffsets(
        topic_id=topic_ids.pop() if len(topic_ids) == 1 else None,
        next_offsets={partition: offset for partition, offset, _ in rows},
    )


def landed_offsets(url: str, topic: str) -> LandedOffsets:
    with connect(url) as conn:
        return read_landed_offsets(conn, topic)
