"""Quarantined messages: list them, and replay them through the current transform, exactly once.

A message the stream quarantined keeps its Kafka key, value, headers, coordinates and
timestamp in `raw.quarantined_events`. Once the transform accepts what it rejected (a
parser fixed, a rule relaxed), `replay_quarantine` rebuilds the Arrow batch the
stream's source would have handed it, runs `transform_batch` on it, and lands what
now parses through the sink's own steps (`copy_to_staging`, `DROP_SUPERSEDED_VERSIONS`,
`upsert_staged`: the latest version of an object wins, an identical payload is a
duplicate). No Spark: the transform and the sink's SQL are plain Python.

Exactly once:
- each chunk is one transaction: the rows landed, the quarantine rows marked
  (`replayed_at`, `replayed_as`; or the new `reason` and `detail` of one still
  failing) and the chunk's counts in `ops.quarantine_replays` commit together or
  not at all, so a crash mid-replay leaves every message either replayed or as it
  was;
- a chunk takes its quarantine rows `FOR UPDATE SKIP LOCKED`: two replays running
  at once never hold the same message, each replays what the other is not
  holding, and a row committed as replayed is no longer pending for the other.
  Row locks rather than the stream's writer lock: the stream holds that lock for
  as long as it runs, and the upsert needs no single writer (it keeps the latest
  version whichever transaction comes first, as between two stream batches);
- replay only looks at rows not yet landed (`replayed_at IS NULL`): a second replay
  finds nothing to do for a message the first landed.

Replay sees the headers as the quarantine stored them: UTF-8 text, with bytes that
were not UTF-8 replaced (U+FFFD), so a message quarantined for such a header fails again.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime

import psycopg
import pyarrow as pa
from psycopg import sql

from txstream_dagster.resources import PostgresResource
from txstream_spark.rows import one_row
from txstream_spark.sink import DROP_SUPERSEDED_VERSIONS, copy_to_staging, upsert_staged
from txstream_spark.transform import KAFKA_MESSAGE_SCHEMA, transform_batch

REPLAY_CHUNK = 1000
# The replay's own staging table: temporary (this session's only), emptied by every commit.
REPLAY_STAGING = sql.Identifier("quarantine_replay_staging")

_FILTER = sql.SQL("""
    (%(reason)s::text IS NULL OR q.reason = %(reason)s::text)
    AND (%(since)s::timestamptz IS NULL OR q.quarantined_at >= %(since)s::timestamptz)
""")

# The next chunk of messages to replay, after the last one this replay saw (a message that still fails
# stays pending: the key keeps the replay moving past it), locked for this transaction.
_PENDING_CHUNK = sql.SQL("""
SELECT q.kafka_topic, q.kafka_topic_id, q.kafka_partition, q.kafka_offset, q.kafka_timestamp, q.kafka_key,
       q.raw_value, q.headers
FROM raw.quarantined_events q
WHERE q.replayed_at IS NULL AND {filter}
  AND (q.kafka_topic, q.kafka_topic_id, q.kafka_partition, q.kafka_offset)
      > (%(topic)s, %(topic_id)s, %(partition)s, %(offset)s)
ORDER BY q.kafka_topic, q.kafka_topic_id, q.kafka_partition, q.kafka_offset
LIMIT %(limit)s
FOR UPDATE SKIP LOCKED
""").format(filter=_FILTER)

_MARK_LANDED = sql.SQL("""
UPDATE raw.quarantined_events q
SET replayed_at = now(), replayed_as = s.object_id, replay_attempts = q.replay_attempts + 1, last_replayed_at = now()
FROM {staging} s
WHERE s.quarantine_reason IS NULL
  AND (q.kafka_topic, q.kafka_topic_id, q.kafka_partition, q.kafka_offset)
      = (s.kafka_topic, s.kafka_topic_id, s.kafka_partition, s.kafka_offset)
""")

_MARK_STILL_FAILING = sql.SQL("""
UPDATE raw.quarantined_events q
SET first_reason = coalesce(q.first_reason, q.reason), reason = s.quarantine_reason, detail = s.quarantine_detail,
    replay_attempts = q.replay_attempts + 1, last_replayed_at = now()
FROM {staging} s
WHERE s.quarantine_reason IS NOT NULL
  AND (q.kafka_topic, q.kafka_topic_id, q.kafka_partition, q.kafka_offset)
      = (s.kafka_topic, s.kafka_topic_id, s.kafka_partition, s.kafka_offset)
RETURNING s.quarantine_reason
""")


@dataclass
class ReplayReport:
    """What a replay did (or, dry, would do)."""

    replayed: int = 0  # messages put through the transform again
    inserted: int = 0
    updated: int = 0
    duplicates: int = 0  # landed as older or identical versions of rows already held
    still_failing: Counter[str] = field(default_factory=Counter)  # new reason → messages
    dry_run: bool = False

    @property
    def landed(self) -> int:
        return self.inserted + self.updated + self.duplicates

    def add(self, other: ReplayReport) -> None:
        self.replayed += other.replayed
        self.inserted += other.inserted
        self.updated += other.updated
        self.duplicates += other.duplicates
        self.still_failing.update(other.still_failing)


def kafka_batch_of(rows: list[tuple]) -> pa.RecordBatch:
    """The quarantined messages as Spark's Kafka source handed them to the transform. Pure."""
    return pa.RecordBatch.from_pylist(
        [
            {
                "key": None if key is None else bytes(key),
                "value": None if value is None else bytes(value),
                "topic": topic,
                "partition": partition,
                "offset": offset,
                "timestamp": timestamp,
                "timestampType": 0,
                "headers": [
                    {"key": name, "value": None if text is None else str(text).encode("utf-8")}
                    for name, text in (headers or {}).items()
                ],
            }
            for topic, _topic_id, partition, offset, timestamp, key, value, headers in rows
        ],
        schema=KAFKA_MESSAGE_SCHEMA,
    )


def _transformed(rows: list[tuple], now: datetime) -> Iterator[pa.RecordBatch]:
    """Each topic incarnation's messages through the current transform, stamped with its id."""
    by_topic_id: dict[str, list[tuple]] = {}
    for row in rows:
        by_topic_id.setdefault(row[1], []).append(row)
    for topic_id, messages in by_topic_id.items():
        yield transform_batch(kafka_batch_of(messages), topic_id, now)


def replay_chunk(
    conn: psycopg.Connection,
    *,
    reason: str | None = None,
    since: datetime | None = None,
    after: tuple = ("", "", -1, -1),
    limit: int = REPLAY_CHUNK,
    now: datetime | None = None,
) -> tuple[ReplayReport, tuple | None]:
    """Replay the next chunk of pending messages after the key `after`, in the caller's open transaction
    (commit it to keep the result). (what it did, the last key it took; None when nothing was pending)."""
    now = now or datetime.now(UTC)
    report = ReplayReport()
    with conn.cursor() as cur:
        rows = cur.execute(
            _PENDING_CHUNK,
            {
                "reason": reason,
                "since": since,
                "topic": after[0],
                "topic_id": after[1],
                "partition": after[2],
                "offset": after[3],
                "limit": limit,
            },
        ).fetchall()
        if not rows:
            return report, None
        cur.execute(
            sql.SQL(
                "CREATE TEMP TABLE IF NOT EXISTS {} (LIKE ops.stream_staging_template) ON COMMIT DELETE ROWS"
            ).format(REPLAY_STAGING)
        )
        cur.execute(sql.SQL("TRUNCATE {}").format(REPLAY_STAGING))
        copy_to_staging(conn, REPLAY_STAGING, 0, _transformed(rows, now))
        cur.execute(_MARK_LANDED.format(staging=REPLAY_STAGING))
        report.still_failing = Counter(r for (r,) in cur.execute(_MARK_STILL_FAILING.format(staging=REPLAY_STAGING)))
        report.replayed = len(rows)
        accepted = report.replayed - report.still_failing.total()
        if accepted:
            # Several versions of one object in the chunk: the latest is upserted, the others are duplicates.
            cur.execute(DROP_SUPERSEDED_VERSIONS.format(staging=REPLAY_STAGING))
            report.inserted, report.updated = upsert_staged(cur, REPLAY_STAGING)
            report.duplicates = accepted - report.inserted - report.updated
        cur.execute(
            "INSERT INTO ops.quarantine_replays (replayed, inserted, updated, duplicates, still_quarantined) "
            "VALUES (%s, %s, %s, %s, %s)",
            [report.replayed, report.inserted, report.updated, report.duplicates, report.still_failing.total()],
        )
        cur.execute(sql.SQL("TRUNCATE {}").format(REPLAY_STAGING))
    return report, rows[-1][:4]


def replay_quarantine(
    postgres: PostgresResource,
    *,
    reason: str | None = None,
    since: datetime | None = None,
    dry_run: bool = False,
    chunk: int = REPLAY_CHUNK,
    now: datetime | None = None,
) -> ReplayReport:
    """Replay every pending quarantined message (of `reason`, quarantined since `since`), one transaction per
    chunk. `dry_run` does all of it and rolls each chunk back: the figures are exactly what a replay would do."""
    total = ReplayReport(dry_run=dry_run)
    after: tuple | None = ("", "", -1, -1)
    with postgres.connect() as conn:
        while after is not None:
            with conn.transaction(force_rollback=dry_run):
                report, after = replay_chunk(conn, reason=reason, since=since, after=after, limit=chunk, now=now)
            total.add(report)
    return total


# --- listing -------------------------------------------------------------------


@dataclass(frozen=True)
class QuarantinedMessage:
    kafka_topic: str
    kafka_partition: int
    kafka_offset: int
    reason: str
    detail: str
    quarantined_at: datetime
    replay_state: str  # pending | landed as <id> | still failing


def replay_state(replayed_at: datetime | None, replayed_as: str | None, attempts: int) -> str:
    """How a quarantined message stands, for a person. Pure."""
    if replayed_at is not None:
        return f"landed {replayed_at:%Y-%m-%d %H:%M} as {replayed_as}"
    if attempts:
        return f"still failing after {attempts} replay{'s' if attempts > 1 else ''}"
    return "pending"


def count_by_reason(
    postgres: PostgresResource, *, reason: str | None = None, since: datetime | None = None
) -> list[tuple[str, int, int]]:
    """(reason, messages still quarantined, messages landed by a replay), most quarantined first."""
    return postgres.fetch_all(
        sql.SQL("""SELECT q.reason, count(*) FILTER (WHERE q.replayed_at IS NULL),
                   count(*) FILTER (WHERE q.replayed_at IS NOT NULL)
            FROM raw.quarantined_events q WHERE {filter}
            GROUP BY q.reason ORDER BY 2 DESC, 3 DESC, 1""").format(filter=_FILTER),
        {"reason": reason, "since": since},
    )


def quarantined_messages(
    postgres: PostgresResource, *, reason: str | None = None, since: datetime | None = None, limit: int = 50
) -> list[QuarantinedMessage]:
    """The newest quarantined messages first (of `reason`, quarantined since `since`)."""
    rows = postgres.fetch_all(
        sql.SQL("""SELECT q.kafka_topic, q.kafka_partition, q.kafka_offset, q.reason, q.detail, q.quarantined_at,
                   q.replayed_at, q.replayed_as, q.replay_attempts
            FROM raw.quarantined_events q WHERE {filter}
            ORDER BY q.quarantined_at DESC, q.kafka_topic, q.kafka_partition, q.kafka_offset DESC
            LIMIT %(limit)s""").format(filter=_FILTER),
        {"reason": reason, "since": since, "limit": limit},
    )
    return [
        QuarantinedMessage(topic, partition, offset, why, detail, at, replay_state(replayed_at, replayed_as, attempts))
        for topic, partition, offset, why, detail, at, replayed_at, replayed_as, attempts in rows
    ]


def pending_count(postgres: PostgresResource) -> int:
    return one_row(postgres.fetch_one("SELECT count(*) FROM raw.quarantined_events WHERE replayed_at IS NULL"))[0]
