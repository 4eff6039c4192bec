"""One micro-batch → PostgreSQL, exactly once in effect, by the topic's only writer.

0. Claim: a stream query becomes the topic's writer by taking a session-level
   advisory lock on the connection it applies with; a second query on the same
   topic finds it taken and does not start. After a reconnect (PostgreSQL
   restarted) the lock is taken again before anything is written, or the query
   stops: it lost the topic to another writer.
1. Stage: every Spark task COPYs its transformed rows into this query's own
   UNLOGGED staging table, in parallel, streaming (PostgreSQL parses while Python
   transforms). The driver never holds the batch; no other writer's tasks can add
   rows to it.
2. Apply, in one transaction on the lock's connection: check the lock is still
   held, upsert the staged rows into `raw.transactions` (the latest version of
   each object wins), insert the quarantined messages, advance
   `ops.stream_offsets`, record the batch in `ops.stream_batches`, empty staging.

The batch is keyed by the Kafka offset ranges it covers, so a batch replayed
after a crash (same ranges) is recognised and changes nothing.
"""

from __future__ import annotations

import hashlib
import io
import time
import uuid
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime

import orjson
import psycopg
import pyarrow as pa
import pyarrow.csv as pa_csv
from psycopg import sql

from txstream_spark.kafka_topic import TopicRecreated, TopicWatch
from txstream_spark.rows import one_row
from txstream_spark.transform import OUTPUT_SCHEMA, TYPED_COLUMNS

KAFKA_COLUMNS = ["kafka_topic", "kafka_topic_id", "kafka_partition", "kafka_offset", "kafka_timestamp"]
ROW_COLUMNS = TYPED_COLUMNS + KAFKA_COLUMNS
STAGED_COLUMNS = ["spark_batch_id", *OUTPUT_SCHEMA.names]
BYTEA_COLUMNS = ("kafka_key", "raw_value")


def _columns(names: Iterable[str]) -> sql.Composed:
    return sql.SQL(", ").join(map(sql.Identifier, names))


class WriterLost(RuntimeError):
    """Another stream query holds the topic's writer lock: this one must stop writing."""


def writer_lock_key(topic: str) -> str:
    """The advisory lock that makes one stream query the topic's only writer (the Dagster sensor probes it)."""
    return f"txstream-stream-writer:{topic}"


def try_writer_lock(conn: psycopg.Connection, topic: str) -> bool:
    """Take the topic's writer lock for `conn`'s session; False when another session holds it."""
    return one_row(
        conn.execute("SELECT pg_try_advisory_lock(hashtextextended(%s, 0))", [writer_lock_key(topic)]).fetchone()
    )[0]


def release_writer_lock(conn: psycopg.Connection, topic: str) -> None:
    conn.execute("SELECT pg_advisory_unlock(hashtextextended(%s, 0))", [writer_lock_key(topic)])


def staging_prefix(topic: str) -> str:
    return f"stream_staging_{hashlib.sha1(topic.encode()).hexdigest()[:12]}_"


def new_writer_id() -> str:
    """Names one stream query's staging table (a writer's id lives as long as its query)."""
    return uuid.uuid4().hex[:12]


def staging_table(topic: str, writer: str) -> sql.Identifier:
    """ops.stream_staging_<hash of the topic>_<writer>: one per stream query, never shared."""
    return sql.Identifier("ops", f"{staging_prefix(topic)}{writer}")


def drop_staging(conn: psycopg.Connection, table: sql.Identifier) -> None:
    conn.execute(sql.SQL("DROP TABLE IF EXISTS {}").format(table))


# 64-bit advisory lock keys show in pg_locks as classid (high 32 bits) and objid (low 32 bits).
_HOLDS_WRITER_LOCK = """
SELECT EXISTS (
    SELECT 1 FROM pg_locks
    WHERE locktype = 'advisory' AND pid = pg_backend_pid() AND granted AND objsubid = 1
      AND ((classid::bigint << 32) | objid::bigint) = hashtextextended(%s, 0))
"""


def claim_writer_lock(conn: psycopg.Connection, topic: str, writer: str) -> bool:
    """Make `conn`'s session the topic's only writer (False: another holds it), then drop the staging
    tables earlier writers left behind (a writer that died, or lost the lock, never applies them)."""
    if not try_writer_lock(conn, topic):
        conn.rollback()
        return False
    for (stale,) in conn.execute(
        "SELECT tablename FROM pg_tables WHERE schemaname = 'ops' AND starts_with(tablename, %s) AND tablename <> %s",
        [staging_prefix(topic), f"{staging_prefix(topic)}{writer}"],
    ).fetchall():
        drop_staging(conn, sql.Identifier("ops", stale))
    conn.commit()
    return True


def holds_writer_lock(conn: psycopg.Connection, topic: str) -> bool:
    return one_row(conn.execute(_HOLDS_WRITER_LOCK, [writer_lock_key(topic)]).fetchone())[0]


# --- 1. stage ----------------------------------------------------------------


def prepare_staging(conn: psycopg.Connection, table: sql.Identifier) -> None:
    """An empty staging table (a failed attempt may have left rows)."""
    with conn.transaction():
        conn.execute(sql.SQL("CREATE UNLOGGED TABLE IF NOT EXISTS {} (LIKE ops.stream_staging_template)").format(table))
        conn.execute(sql.SQL("TRUNCATE {}").format(table))


def _csv_ready(batch: pa.RecordBatch, spark_batch_id: int) -> pa.Table:
    """The batch as COPY … (FORMAT csv) takes it: bytea as \\x-hex text (only quarantined rows carry any)."""
    columns = [pa.repeat(pa.scalar(spark_batch_id, pa.int64()), len(batch))]
    for name in OUTPUT_SCHEMA.names:
        column = batch.column(name)
        if name in BYTEA_COLUMNS:
            column = pa.array([None if v is None else "\\x" + v.hex() for v in column.to_pylist()], pa.string())
        columns.append(column)
    return pa.Table.from_arrays(columns, names=STAGED_COLUMNS)


def copy_to_staging(
    conn: psycopg.Connection, table: sql.Identifier, spark_batch_id: int, batches: Iterable[pa.RecordBatch]
) -> int:
    """Stream transformed batches into the staging table; returns the rows staged."""
    staged = 0
    statement = sql.SQL("COPY {} ({}) FROM STDIN WITH (FORMAT csv)").format(table, _columns(STAGED_COLUMNS))
    with conn.transaction(), conn.cursor() as cur, cur.copy(statement) as copy:
        for batch in batches:
            if len(batch) == 0:
                continue
            buffer = io.BytesIO()
            pa_csv.write_csv(_csv_ready(batch, spark_batch_id), buffer, pa_csv.WriteOptions(include_header=False))
            copy.write(buffer.getbuffer())
            staged += len(batch)
    return staged


# One connection per Python worker, reused by the tasks it runs (connecting costs more than
# staging a small micro-batch).
_connections: dict[str, psycopg.Connection] = {}


def _worker_connection(url: str) -> psycopg.Connection:
    conn = _connections.get(url)
    if conn is None or conn.closed or conn.broken:
        conn = _connections[url] = psycopg.connect(url, connect_timeout=10, application_name="txstream-stream-stage")
    return conn


def stage_in_tasks(
    url: str,
    table: sql.Identifier,
    spark_batch_id: int,
    transform: Callable[[Iterator[pa.RecordBatch]], Iterator[pa.RecordBatch]],
) -> Callable[[Iterator[pa.RecordBatch]], Iterator[pa.RecordBatch]]:
    """A `mapInArrow` function: each Spark task transforms its messages and COPYs them to staging."""

    def stage(messages: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
        conn = _worker_connection(url)
        try:
            staged = copy_to_staging(conn, table, spark_batch_id, transform(messages))
        except BaseException:
            _connections.pop(url, None)
            conn.close()
            raise
        yield pa.RecordBatch.from_pydict({"staged": [staged]})

    return stage


# --- 2. apply ----------------------------------------------------------------


@dataclass
class BatchResult:
    consumed: int = 0
    inserted: int = 0
    updated: int = 0
    duplicates: int = 0
    quarantined: int = 0
    replayed: bool = False
    offset_ranges: list[dict] = field(default_factory=list)
    seconds: float = 0.0  # applying, on the driver
    stage_seconds: float = 0.0  # reading, transforming and staging, in the tasks

    def as_log_line(self) -> str:
        return (
            f"consumed={self.consumed} inserted={self.inserted} updated={self.updated} "
            f"duplicates={self.duplicates} quarantined={self.quarantined} replayed={self.replayed} "
            f"staged in {self.stage_seconds:.3f} s, applied in {self.seconds:.3f} s"
        )


def range_key(ranges: list[dict]) -> str:
    canonical = orjson.dumps([[r["topic"], r["topic_id"], r["partition"], r["from"], r["to"]] for r in ranges])
    return hashlib.sha256(canonical).hexdigest()


# Later versions win; an identical payload is a duplicate, not an update, unless it names the payout
# the object was paid out in. A later version listed without a payout keeps the payout already known.
UPSERT = sql.SQL("""
WITH upserted AS (
    INSERT INTO raw.transactions AS t ({columns})
    SELECT {columns} FROM {staging} WHERE quarantine_reason IS NULL
    ON CONFLICT (object_id) DO UPDATE SET {assignments}, payout_id = coalesce(excluded.payout_id, t.payout_id),
        ingested_at = now(), landed_xid = pg_current_xact_id()
    WHERE (excluded.event_time, excluded.kafka_offset) > (t.event_time, t.kafka_offset)
      AND (excluded.payload IS DISTINCT FROM t.payload
           OR (excluded.payout_id IS NOT NULL AND excluded.payout_id IS DISTINCT FROM t.payout_id))
    RETURNING (xmax = 0) AS inserted
)
SELECT count(*) FILTER (WHERE inserted), count(*) FILTER (WHERE NOT inserted) FROM upserted
""")

# One scan for what the apply needs to know of the staged batch (quarantined rows have no object_id).
STAGED_FIGURES = sql.SQL("""
SELECT count(*), count(DISTINCT (kafka_partition, kafka_offset)),
       count(*) FILTER (WHERE quarantine_reason IS NOT NULL), count(DISTINCT object_id)
FROM {}
""")

# A task Spark retried after it had staged its rows leaves them twice.
DROP_REPEATED_MESSAGES = sql.SQL("""
DELETE FROM {staging} a USING {staging} b
WHERE a.kafka_partition = b.kafka_partition AND a.kafka_offset = b.kafka_offset AND a.ctid > b.ctid
""")

# Several versions of one object in a batch: only the latest can be upserted.
DROP_SUPERSEDED_VERSIONS = sql.SQL("""
DELETE FROM {staging} s USING (
    SELECT ctid, row_number() OVER (
        PARTITION BY object_id ORDER BY event_time DESC, kafka_offset DESC) AS rank
    FROM {staging} WHERE quarantine_reason IS NULL
) ranked
WHERE s.ctid = ranked.ctid AND ranked.rank > 1
""")

QUARANTINE = sql.SQL("""
INSERT INTO raw.quarantined_events (kafka_topic, kafka_topic_id, kafka_partition, kafka_offset,
    kafka_timestamp, kafka_key, raw_value, headers, reason, detail)
SELECT kafka_topic, kafka_topic_id, kafka_partition, kafka_offset, kafka_timestamp, kafka_key, raw_value,
       headers, quarantine_reason, quarantine_detail
FROM {staging} WHERE quarantine_reason IS NOT NULL
ON CONFLICT DO NOTHING
""")


def upsert_staged(cur: psycopg.Cursor, staging: sql.Identifier) -> tuple[int, int]:
    """Upsert the staged accepted rows into raw.transactions (at most one version per object staged):
    (inserted, updated). The stream's apply and the quarantine replay both land rows through this."""
    inserted, updated = one_row(
        cur.execute(
            UPSERT.format(
                columns=_columns(ROW_COLUMNS),
                staging=staging,
                assignments=sql.SQL(", ").join(
                    sql.SQL("{0} = excluded.{0}").format(sql.Identifier(c))
                    for c in ROW_COLUMNS
                    if c not in ("object_id", "payout_id")
                ),
            )
        ).fetchone()
    )
    return inserted, updated


def apply_staged(
    conn: psycopg.Connection, topic: str, staging: sql.Identifier, spark_batch_id: int | None, started_at: datetime
) -> BatchResult:
    """Move the staged batch into the raw tables, in one transaction, on the connection holding the writer lock."""
    started = time.perf_counter()
    result = BatchResult()
    with conn.transaction(), conn.cursor() as cur:
        # Only the topic's writer applies (a query whose session was lost and whose lock another took stops).
        if not holds_writer_lock(conn, topic):
            raise WriterLost(f"this stream query no longer holds topic {topic!r}'s writer lock; nothing was applied")
        total, distinct_messages, quarantined, distinct_objects = one_row(
            cur.execute(STAGED_FIGURES.format(staging)).fetchone()
        )
        if total == 0:
            return result
        if distinct_messages < total:
            cur.execute(DROP_REPEATED_MESSAGES.format(staging=staging))
            total, distinct_messages, quarantined, distinct_objects = one_row(
                cur.execute(STAGED_FIGURES.format(staging)).fetchone()
            )
        result.offset_ranges = [
            {"topic": t, "topic_id": tid, "partition": p, "from": lo, "to": hi, "count": n}
            for t, tid, p, lo, hi, n in cur.execute(
                sql.SQL(
                    "SELECT kafka_topic, kafka_topic_id, kafka_partition, min(kafka_offset), max(kafka_offset), "
                    "count(*) FROM {} GROUP BY 1, 2, 3 ORDER BY 1, 3"
                ).format(staging)
            ).fetchall()
        ]
        result.consumed = distinct_messages
        key = range_key(result.offset_ranges)
        if cur.execute("SELECT 1 FROM ops.stream_batches WHERE range_key = %s", [key]).fetchone():
            result.replayed = True
            result.duplicates = result.consumed
            cur.execute(sql.SQL("TRUNCATE {}").format(staging))
            result.seconds = time.perf_counter() - started
            return result

        accepted = total - quarantined
        if distinct_objects < accepted:
            cur.execute(DROP_SUPERSEDED_VERSIONS.format(staging=staging))
        result.inserted, result.updated = upsert_staged(cur, staging)
        result.duplicates = accepted - result.inserted - result.updated
        result.quarantined = quarantined
        if quarantined:
            cur.execute(QUARANTINE.format(staging=staging))

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
            # clock_timestamp(), not now(): the moment the batch is done, for latency figures.
            """INSERT INTO ops.stream_batches (range_key, kafka_topic, kafka_topic_id, spark_batch_id,
                   offset_ranges, consumed, inserted, updated, duplicates, quarantined, started_at, committed_at)
               VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, clock_timestamp())""",
            [
                key,
                topic,
                result.offset_ranges[0]["topic_id"],
                spark_batch_id,
                orjson.dumps(result.offset_ranges).decode(),
                result.consumed,
                result.inserted,
                result.updated,
                result.duplicates,
                result.quarantined,
                started_at,
            ],
        )
        cur.execute(sql.SQL("TRUNCATE {}").format(staging))
    result.seconds = time.perf_counter() - started
    return result


class SinkUnavailable(RuntimeError):
    """A batch could not be written after every retry."""


class PostgresSink:
    """The `foreachBatch` callable: the topic's only writer; stages in the tasks, applies on the driver.

    `claim()` first, before the query starts. A failed batch is tried again: each
    attempt starts from an empty staging table and applying is one transaction, so
    an attempt that failed half-way (PostgreSQL restarting, a broker away, a task
    lost) left nothing behind; a reconnect takes the writer lock again or stops the
    query (WriterLost). After the last attempt the query fails, and the next run
    replays the batch. Before applying, `topic_watch` makes sure the staged
    messages came from the topic the stream started on, not from one created
    again under its name.
    """

    RETRY_DELAYS_S = (1, 2, 4, 8, 15, 30)

    def __init__(
        self, url: str, topic: str, transform, on_batch=None, log=print, topic_watch: TopicWatch | None = None
    ):
        self.url = url
        self.topic = topic
        self.transform = transform
        self.on_batch = on_batch
        self.log = log
        self.topic_watch = topic_watch
        self.writer = new_writer_id()
        self.staging = staging_table(topic, self.writer)
        self.conn: psycopg.Connection | None = None

    def claim(self) -> bool:
        """Become the topic's only writer; False when another stream query is."""
        conn = psycopg.connect(self.url, connect_timeout=5, application_name="txstream-stream-sink")
        if not claim_writer_lock(conn, self.topic, self.writer):
            conn.close()
            return False
        self.conn = conn
        return True

    def _connection(self) -> psycopg.Connection:
        """The writer's connection; a new one takes the writer lock again first."""
        if self.conn is None or self.conn.closed or self.conn.broken:
            self.conn = None
            if not self.claim():
                raise WriterLost(
                    f"another stream query took topic {self.topic!r}'s writer lock while this one reconnected "
                    "(PostgreSQL restarted?): this one stops, the other goes on writing."
                )
            assert self.conn is not None  # claim() set it
        return self.conn

    def write(self, batch_df, batch_id: int) -> BatchResult:
        started_at = datetime.now(UTC)
        conn = self._connection()
        prepare_staging(conn, self.staging)
        stage = stage_in_tasks(self.url, self.staging, batch_id, self.transform)
        staging_started = time.perf_counter()
        batch_df.mapInArrow(stage, "staged long").collect()
        stage_seconds = time.perf_counter() - staging_started
        if self.topic_watch is not None:
            self.topic_watch.check()  # asked after the read: a topic recreated before or during it shows by now
        result = apply_staged(conn, self.topic, self.staging, batch_id, started_at)
        result.stage_seconds = stage_seconds
        return result

    def __call__(self, batch_df, batch_id: int) -> None:
        for attempt, delay in enumerate((*self.RETRY_DELAYS_S, None), start=1):
            try:
                result = self.write(batch_df, batch_id)
                break
            except (TopicRecreated, WriterLost):
                raise
            except Exception as exc:  # noqa: BLE001 - task failures reach us as Py4J errors
                self._disconnect()
                reason = str(exc).strip().splitlines()[0][:300] if str(exc).strip() else type(exc).__name__
                if delay is None:
                    raise SinkUnavailable(
                        f"batch {batch_id} failed {attempt} times, last: {reason}. Nothing of it was applied; "
                        "the next run replays it from the checkpoint."
                    ) from exc
                self.log(f"batch {batch_id} attempt {attempt} failed ({reason}); trying again in {delay} s")
                time.sleep(delay)
        if self.on_batch is not None:
            self.on_batch(batch_id, result)

    def _disconnect(self) -> None:
        if self.conn is not None:
            self.conn.close()
            self.conn = None

    def close(self) -> None:
        """Drop this writer's staging table and give the writer lock up (closing the session releases it)."""
        if self.conn is not None and not self.conn.closed and not self.conn.broken:
            try:
                drop_staging(self.conn, self.staging)
                self.conn.commit()
            except psycopg.Error:
                pass  # the next writer drops it
        self._disconnect()
        if self.topic_watch is not None:
            self.topic_watch.close()
