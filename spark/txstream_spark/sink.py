"""One micro-batch → PostgreSQL, exactly once in effect.

In one transaction: COPY the typed rows into a temporary table and upsert them
into `raw.transactions` (the latest version of each object wins), insert the
quarantined messages, advance `ops.stream_offsets` and record the batch in
`ops.stream_batches`. The batch is keyed by the Kafka offset ranges it covers,
so a batch replayed after a crash (same ranges) is recognised and changes
nothing.
"""

from __future__ import annotations

import hashlib
import io
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone

import orjson
import psycopg
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pa_csv

from psycopg import sql

from txstream_spark.transform import TYPED_COLUMNS

KAFKA_COLUMNS = ["kafka_topic", "kafka_topic_id", "kafka_partition", "kafka_offset", "kafka_timestamp"]
ROW_COLUMNS = TYPED_COLUMNS + KAFKA_COLUMNS
QUARANTINE_COLUMNS = KAFKA_COLUMNS + ["kafka_key", "raw_value", "headers", "reason", "detail"]


def _columns(names: list[str]) -> sql.Composed:
    return sql.SQL(", ").join(map(sql.Identifier, names))


# Later versions win; an identical payload is a duplicate, not an update.
UPSERT = sql.SQL("""
WITH latest AS (
    SELECT DISTINCT ON (object_id) *
    FROM incoming
    ORDER BY object_id, event_time DESC, kafka_offset DESC
), upserted AS (
    INSERT INTO raw.transactions AS t ({columns})
    SELECT {columns} FROM latest
    ON CONFLICT (object_id) DO UPDATE SET {assignments}, ingested_at = now()
    WHERE (excluded.event_time, excluded.kafka_offset) > (t.event_time, t.kafka_offset)
      AND excluded.payload IS DISTINCT FROM t.payload
    RETURNING (xmax = 0) AS inserted
)
SELECT count(*) FILTER (WHERE inserted), count(*) FILTER (WHERE NOT inserted) FROM upserted
""").format(
    columns=_columns(ROW_COLUMNS),
    assignments=sql.SQL(", ").join(
        sql.SQL("{0} = excluded.{0}").format(sql.Identifier(c)) for c in ROW_COLUMNS if c != "object_id"
    ),
)


@dataclass
class BatchResult:
    consumed: int = 0
    inserted: int = 0
    updated: int = 0
    duplicates: int = 0
    quarantined: int = 0
    replayed: bool = False
    offset_ranges: list[dict] = field(default_factory=list)
    seconds: float = 0.0

    def as_log_line(self) -> str:
        return (
            f"consumed={self.consumed} inserted={self.inserted} updated={self.updated} "
            f"duplicates={self.duplicates} quarantined={self.quarantined} replayed={self.replayed} "
            f"seconds={self.seconds:.3f}"
        )


def offset_ranges(table: pa.Table) -> list[dict]:
    """Per partition: the first and last offset in the batch, and how many messages."""
    grouped = table.group_by(["kafka_topic", "kafka_topic_id", "kafka_partition"]).aggregate(
        [("kafka_offset", "min"), ("kafka_offset", "max"), ("kafka_offset", "count")]
    )
    ranges = [
        {
            "topic": row["kafka_topic"],
            "topic_id": row["kafka_topic_id"],
            "partition": row["kafka_partition"],
            "from": row["kafka_offset_min"],
            "to": row["kafka_offset_max"],
            "count": row["kafka_offset_count"],
        }
        for row in grouped.to_pylist()
    ]
    return sorted(ranges, key=lambda r: (r["topic"], r["partition"]))


def range_key(ranges: list[dict]) -> str:
    canonical = orjson.dumps([[r["topic"], r["topic_id"], r["partition"], r["from"], r["to"]] for r in ranges])
    return hashlib.sha256(canonical).hexdigest()


def _copy_csv(cur: psycopg.Cursor, target: sql.Composable, table: pa.Table) -> None:
    """COPY through Arrow's CSV writer: far faster than row-by-row Python for wide JSON rows."""
    buffer = io.BytesIO()
    pa_csv.write_csv(table, buffer, pa_csv.WriteOptions(include_header=False, quoting_style="needed"))
    statement = sql.SQL("COPY {} ({}) FROM STDIN WITH (FORMAT csv)").format(target, _columns(table.column_names))
    with cur.copy(statement) as copy:
        copy.write(buffer.getbuffer())


def write_batch(conn: psycopg.Connection, table: pa.Table, spark_batch_id: int | None = None) -> BatchResult:
    """Apply one transformed micro-batch (transform.OUTPUT_SCHEMA) in a single transaction."""
    started = time.perf_counter()
    started_at = datetime.now(timezone.utc)
    result = BatchResult(consumed=table.num_rows)
    if table.num_rows == 0:
        return result
    result.offset_ranges = offset_ranges(table)
    key = range_key(result.offset_ranges)
    topics = sorted({r["topic"] for r in result.offset_ranges})
    quarantined_mask = pc.is_valid(table.column("quarantine_reason"))
    rows = table.filter(pc.invert(quarantined_mask)).select(ROW_COLUMNS)
    quarantined = table.filter(quarantined_mask)

    with conn.transaction(), conn.cursor() as cur:
        # One writer per topic at a time, so the replay check below cannot race.
        for topic in topics:
            cur.execute("SELECT pg_advisory_xact_lock(hashtextextended(%s, 0))", [f"txstream-sink:{topic}"])
        cur.execute("SELECT 1 FROM ops.stream_batches WHERE range_key = %s", [key])
        if cur.fetchone():
            result.replayed = True
            result.duplicates = result.consumed
            result.seconds = time.perf_counter() - started
            return result

        if rows.num_rows:
            cur.execute(
                sql.SQL("CREATE TEMP TABLE incoming ON COMMIT DROP AS SELECT {} FROM raw.transactions WITH NO DATA")
                .format(_columns(ROW_COLUMNS))
            )
            _copy_csv(cur, sql.Identifier("incoming"), rows)
            cur.execute(UPSERT)
            result.inserted, result.updated = cur.fetchone()
        result.duplicates = rows.num_rows - result.inserted - result.updated

        if quarantined.num_rows:
            result.quarantined = quarantined.num_rows
            with cur.copy(
                sql.SQL("COPY raw.quarantined_events ({}) FROM STDIN").format(_columns(QUARANTINE_COLUMNS))
            ) as copy:
                for row in quarantined.select(
                    KAFKA_COLUMNS + ["kafka_key", "raw_value", "headers", "quarantine_reason", "quarantine_detail"]
                ).to_pylist():
                    copy.write_row(list(row.values()))

        for r in result.offset_ranges:
            cur.execute(
                """INSERT INTO ops.stream_offsets (kafka_topic, kafka_partition, kafka_topic_id, next_offset)
                   VALUES (%(topic)s, %(partition)s, %(topic_id)s, %(next)s)
                   ON CONFLICT (kafka_topic, kafka_partition) DO UPDATE SET
                       next_offset = CASE WHEN ops.stream_offsets.kafka_topic_id = excluded.kafka_topic_id
                                          THEN greatest(ops.stream_offsets.next_offset, excluded.next_offset)
                                          ELSE excluded.next_offset END,
                       kafka_topic_id = excluded.kafka_topic_id,
                       updated_at = now()""",
                {**r, "next": r["to"] + 1},
            )
        cur.execute(
            """INSERT INTO ops.stream_batches (range_key, kafka_topic, kafka_topic_id, spark_batch_id,
                   offset_ranges, consumed, inserted, updated, duplicates, quarantined, started_at)
               VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)""",
            [
                key, topics[0], result.offset_ranges[0]["topic_id"], spark_batch_id,
                orjson.dumps(result.offset_ranges).decode(), result.consumed, result.inserted,
                result.updated, result.duplicates, result.quarantined, started_at,
            ],
        )
    result.seconds = time.perf_counter() - started
    return result


class SinkUnavailable(RuntimeError):
    pass


class PostgresSink:
    """The `foreachBatch` callable: one connection for the job, a batch retried while PostgreSQL is away.

    A batch is one transaction, so a retry after a dropped connection starts
    from nothing; if PostgreSQL stays away the query fails and the next run
    replays the batch from Spark's checkpoint.
    """

    RETRY_DELAYS_S = (1, 2, 4, 8, 15, 30)

    def __init__(self, url: str, on_batch=None):
        self.url = url
        self.on_batch = on_batch
        self.conn: psycopg.Connection | None = None

    def _connection(self) -> psycopg.Connection:
        if self.conn is None or self.conn.closed:
            self.conn = psycopg.connect(self.url, connect_timeout=5, application_name="txstream-stream-sink")
        return self.conn

    def __call__(self, batch_df, batch_id: int) -> None:
        table = batch_df.toArrow()
        for attempt, delay in enumerate((*self.RETRY_DELAYS_S, None)):
            try:
                result = write_batch(self._connection(), table, batch_id)
                break
            except psycopg.OperationalError as exc:
                self.close()
                if delay is None:
                    raise SinkUnavailable(
                        f"PostgreSQL stayed unavailable while writing batch {batch_id} ({table.num_rows} messages) "
                        f"after {attempt + 1} attempts: {str(exc).strip().splitlines()[0]}. Nothing of this batch "
                        "was committed; the next run replays it from the checkpoint."
                    ) from None
                time.sleep(delay)
        if self.on_batch is not None:
            self.on_batch(batch_id, result)

    def close(self) -> None:
        if self.conn is not None:
            self.conn.close()
            self.conn = None
