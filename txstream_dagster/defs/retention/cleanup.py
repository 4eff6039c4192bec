"""The daily cleanup: delete (or roll up) what is older than its retention, in bounded chunks.

| table | kept | older rows |
|---|---|---|
| ops.stream_batches | TXSTREAM_OPS_RETENTION_DAYS | rolled up into one row per topic and hour |
| ops.stream_lag | TXSTREAM_OPS_RETENTION_DAYS | deleted |
| ops.dagster_run_failures | TXSTREAM_OPS_RETENTION_DAYS | deleted |
| ops.dbt_node_runs | TXSTREAM_OPS_RETENTION_DAYS, and each node's last run and last success | deleted |
| raw.quarantined_events, landed by a replay | TXSTREAM_OPS_RETENTION_DAYS | deleted |
| raw.quarantined_events, never landed | TXSTREAM_QUARANTINE_RETENTION_DAYS | deleted |

Nothing quarantined inside the reconciliation window (TXSTREAM_RECONCILE_DAYS) is ever deleted,
whatever the retentions say. The accounting check (`every_message_is_accounted_for`) stays true:
a batch rolled up keeps its counts and offset ranges in the rollup row (sums; contiguous ranges
merged), and each chunk of quarantine rows deleted is counted in `ops.retention_deletions` in the
same transaction. The two ledgers the check sums (ops.quarantine_replays, ops.retention_deletions)
are a few rows a day and are kept.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime

import orjson
import psycopg

from txstream_dagster.db.logins import Login
from txstream_dagster.defs.retention.resources import Cutoffs, RetentionPolicy
from txstream_dagster.resources import PostgresResource
from txstream_spark.rows import one_row
from txstream_spark.sink import range_key

DELETE_CHUNK = 10_000
ROLLUP_PREFIX = "rollup:"

# Each statement deletes one chunk: the rows are chosen (and locked, skipping any a replay holds) by ctid,
# then deleted by a TID scan, so a chunk costs the rows it deletes, not a scan of the table.
_DELETE_STREAM_LAG = """
DELETE FROM ops.stream_lag WHERE ctid = ANY(ARRAY(
    SELECT ctid FROM ops.stream_lag WHERE observed_at < %(ops)s LIMIT %(limit)s FOR UPDATE SKIP LOCKED))
"""

_DELETE_DAGSTER_RUN_FAILURES = """
DELETE FROM ops.dagster_run_failures WHERE ctid = ANY(ARRAY(
    SELECT ctid FROM ops.dagster_run_failures WHERE failed_at < %(ops)s LIMIT %(limit)s FOR UPDATE SKIP LOCKED))
"""

# dbt_model_freshness shows each node's last run and last success, however old: those stay.
_DELETE_DBT_NODE_RUNS = """
DELETE FROM ops.dbt_node_runs WHERE ctid = ANY(ARRAY(
    SELECT r.ctid FROM ops.dbt_node_runs r
    WHERE r.completed_at < %(ops)s
      AND r.completed_at < (SELECT max(n.completed_at) FROM ops.dbt_node_runs n WHERE n.unique_id = r.unique_id)
      AND (r.status <> 'success' OR r.completed_at < (
          SELECT max(n.completed_at) FROM ops.dbt_node_runs n WHERE n.unique_id = r.unique_id AND n.status = 'success'))
    LIMIT %(limit)s FOR UPDATE SKIP LOCKED))
"""

_DELETE_QUARANTINED_EVENTS = """
DELETE FROM raw.quarantined_events WHERE ctid = ANY(ARRAY(
    SELECT ctid FROM raw.quarantined_events
    WHERE quarantined_at < %(reconciliation)s
      AND (quarantined_at < %(quarantine)s OR (replayed_at IS NOT NULL AND quarantined_at < %(ops)s))
    LIMIT %(limit)s FOR UPDATE SKIP LOCKED))
"""

_RECORD_DELETION = """
INSERT INTO ops.retention_deletions (run_started_at, table_name, rows_deleted, cutoff)
VALUES (%s, %s, %s, %s)
ON CONFLICT (run_started_at, table_name) DO UPDATE
SET rows_deleted = ops.retention_deletions.rows_deleted + excluded.rows_deleted, deleted_at = now()
"""

# Whole hours of batches older than the cutoff, per topic incarnation, not rolled up yet.
_HOURS_TO_ROLL_UP = """
SELECT kafka_topic, kafka_topic_id, date_trunc('hour', committed_at, 'UTC') AS hour
FROM ops.stream_batches
WHERE committed_at < date_trunc('hour', %(ops)s::timestamptz, 'UTC') AND NOT starts_with(range_key, %(prefix)s)
GROUP BY 1, 2, 3 ORDER BY 3, 1, 2
"""

_BATCHES_OF_THE_HOUR = """
SELECT range_key FROM ops.stream_batches
WHERE kafka_topic = %(topic)s AND kafka_topic_id = %(topic_id)s
  AND committed_at >= %(hour)s AND committed_at < %(hour)s::timestamptz + interval '1 hour'
  AND NOT starts_with(range_key, %(prefix)s)
FOR UPDATE
"""

# The batches' offset ranges merged where they follow each other (gaps stay gaps, so the accounting check
# still sees them); `overlaps` when one range repeats offsets of another (the check reports that: keep them).
_MERGED_RANGES = """
WITH ranges AS (
    SELECT r.topic, r.topic_id, r.partition, r."from", r."to", coalesce(r.count, r."to" - r."from" + 1) AS count
    FROM ops.stream_batches b,
         jsonb_to_recordset(b.offset_ranges) AS r(topic text, topic_id text, partition int, "from" bigint,
                                                  "to" bigint, count bigint)
    WHERE b.range_key = ANY(%(keys)s)
), ordered AS (
    SELECT *, lag("to") OVER w AS previous_to FROM ranges
    WINDOW w AS (PARTITION BY topic, topic_id, partition ORDER BY "from", "to")
), islands AS (
    SELECT *, sum(CASE WHEN "from" = previous_to + 1 THEN 0 ELSE 1 END)
                  OVER (PARTITION BY topic, topic_id, partition ORDER BY "from", "to") AS island
    FROM ordered
)
SELECT topic, topic_id, partition, min("from"), max("to"), sum(count), bool_or("from" <= previous_to)
FROM islands GROUP BY topic, topic_id, partition, island ORDER BY topic, topic_id, partition, min("from")
"""

_BATCH_SUMS = """
SELECT sum(consumed), sum(inserted), sum(updated), sum(duplicates), sum(quarantined), sum(batch_count),
       min(started_at), max(committed_at)
FROM ops.stream_batches WHERE range_key = ANY(%(keys)s)
"""


@dataclass
class RetentionReport:
    deleted: dict[str, int] = field(default_factory=dict)  # table → rows deleted
    batches_rolled_up: int = 0
    rollup_rows: int = 0
    # Hours whose batches' ranges overlap: the accounting check reports them, so they are kept as they are.
    hours_kept_for_overlaps: list[str] = field(default_factory=list)


def _delete_in_chunks(
    conn: psycopg.Connection, statement: str, cutoffs: Cutoffs, run: datetime, table: str, cutoff: datetime, limit: int
) -> int:
    """Run `statement` chunk after chunk, each chunk and its count in ops.retention_deletions one transaction."""
    deleted = 0
    params = {"reconciliation": cutoffs.reconciliation, "ops": cutoffs.ops, "quarantine": cutoffs.quarantine}
    while True:
        with conn.transaction():
            chunk = conn.execute(statement, {**params, "limit": limit}).rowcount
            if chunk:
                conn.execute(_RECORD_DELETION, [run, table, chunk, cutoff])
        deleted += chunk
        if chunk < limit:
            return deleted


def roll_up_batches(conn: psycopg.Connection, cutoffs: Cutoffs, report: RetentionReport) -> None:
    """Each whole hour of batches older than the ops cutoff → one row with their sums and merged ranges;
    one transaction per topic and hour."""
    hours = conn.execute(_HOURS_TO_ROLL_UP, {"ops": cutoffs.ops, "prefix": ROLLUP_PREFIX}).fetchall()
    conn.commit()
    for topic, topic_id, hour in hours:
        with conn.transaction():
            where = {"topic": topic, "topic_id": topic_id, "hour": hour, "prefix": ROLLUP_PREFIX}
            keys = [k for (k,) in conn.execute(_BATCHES_OF_THE_HOUR, where).fetchall()]
            merged = conn.execute(_MERGED_RANGES, {"keys": keys}).fetchall()
            if any(overlaps for *_, overlaps in merged):
                report.hours_kept_for_overlaps.append(f"{topic} {topic_id} {hour:%Y-%m-%d %H:00}")
                continue
            ranges = [
                {"topic": t, "topic_id": tid, "partition": p, "from": lo, "to": hi, "count": int(n)}
                for t, tid, p, lo, hi, n, _ in merged
            ]
            consumed, inserted, updated, duplicates, quarantined, batches, started_at, committed_at = one_row(
                conn.execute(_BATCH_SUMS, {"keys": keys}).fetchone()
            )
            conn.execute("DELETE FROM ops.stream_batches WHERE range_key = ANY(%s)", [keys])
            conn.execute(
                """INSERT INTO ops.stream_batches (range_key, kafka_topic, kafka_topic_id, spark_batch_id,
                       offset_ranges, consumed, inserted, updated, duplicates, quarantined, started_at,
                       committed_at, batch_count)
                   VALUES (%s, %s, %s, NULL, %s, %s, %s, %s, %s, %s, %s, %s, %s)""",
                [
                    ROLLUP_PREFIX + range_key(ranges),
                    topic,
                    topic_id,
                    orjson.dumps(ranges).decode(),
                    consumed,
                    inserted,
                    updated,
                    duplicates,
                    quarantined,
                    started_at,
                    committed_at,
                    batches,
                ],
            )
        report.batches_rolled_up += len(keys)
        report.rollup_rows += 1


def apply_retention(
    postgres: PostgresResource, policy: RetentionPolicy, *, now: datetime | None = None, chunk: int = DELETE_CHUNK
) -> RetentionReport:
    """Delete and roll up what the policy no longer keeps. Each table is cleaned by the login that writes it."""
    run = datetime.now(UTC)
    cutoffs = policy.cutoffs(now or run)
    report = RetentionReport()
    with postgres.connect(login=Login.WRITER) as conn:
        conn.commit()
        report.deleted["ops.stream_lag"] = _delete_in_chunks(
            conn, _DELETE_STREAM_LAG, cutoffs, run, "ops.stream_lag", cutoffs.ops, chunk
        )
        report.deleted["ops.dagster_run_failures"] = _delete_in_chunks(
            conn, _DELETE_DAGSTER_RUN_FAILURES, cutoffs, run, "ops.dagster_run_failures", cutoffs.ops, chunk
        )
        report.deleted["raw.quarantined_events"] = _delete_in_chunks(
            conn, _DELETE_QUARANTINED_EVENTS, cutoffs, run, "raw.quarantined_events", cutoffs.quarantine, chunk
        )
        before = report.batches_rolled_up
        roll_up_batches(conn, cutoffs, report)
        if report.batches_rolled_up > before:
            with conn.transaction():
                conn.execute(
                    _RECORD_DELETION,
                    [run, "ops.stream_batches", report.batches_rolled_up - report.rollup_rows, cutoffs.ops],
                )
    report.deleted["ops.stream_batches"] = report.batches_rolled_up - report.rollup_rows
    with postgres.connect(login=Login.TRANSFORMER) as conn:
        report.deleted["ops.dbt_node_runs"] = _delete_in_chunks(
            conn, _DELETE_DBT_NODE_RUNS, cutoffs, run, "ops.dbt_node_runs", cutoffs.ops, chunk
        )
    return report
