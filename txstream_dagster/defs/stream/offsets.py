"""Where the stream is: committed offsets in PostgreSQL against the topic's end offsets."""

from __future__ import annotations

from txstream_dagster.resources import PostgresResource
from txstream_spark.preflight import LandedOffsets, read_landed_offsets
from txstream_spark.sink import release_writer_lock, try_writer_lock


def committed_offsets(postgres: PostgresResource, topic: str) -> LandedOffsets:
    """What has landed of the topic, as the stream job reads it when it decides where to resume."""
    with postgres.connect() as conn:
        return read_landed_offsets(conn, topic)


def lag_by_partition(end_offsets: dict[int, int], committed: LandedOffsets, topic_id: str | None) -> dict[int, int]:
    """Messages not yet landed, per partition. Pure.

    Offsets committed for another incarnation of the topic (recreated under the
    same name) count for nothing: everything in the new topic is lag.
    """
    same_topic = committed.topic_id in (None, "", topic_id) or topic_id is None
    return {
        partition: max(0, end - (committed.next_offsets.get(partition, 0) if same_topic else 0))
        for partition, end in sorted(end_offsets.items())
    }


def record_lag(postgres: PostgresResource, topic: str, end_offsets: dict[int, int], lag: dict[int, int]) -> None:
    with postgres.connect() as conn, conn.cursor() as cur:
        cur.executemany(
            """INSERT INTO ops.stream_lag (kafka_topic, kafka_partition, end_offset, committed_offset)
               VALUES (%s, %s, %s, %s) ON CONFLICT DO NOTHING""",
            [(topic, p, end, end - lag[p]) for p, end in end_offsets.items()],
        )
        # Lag history is for dashboards; a week is plenty and keeps the table small.
        cur.execute("DELETE FROM ops.stream_lag WHERE observed_at < now() - interval '7 days'")


def stream_running(postgres: PostgresResource, topic: str) -> bool:
    """True when a stream query holds the topic's writer lock (a catch-up run or continuous mode)."""
    with postgres.connect(autocommit=True) as conn:
        acquired = try_writer_lock(conn, topic)
        if acquired:
            release_writer_lock(conn, topic)
    return not acquired
