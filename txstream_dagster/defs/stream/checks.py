"""Checks on `raw_transactions`: every message accounted for, data fresh, quarantine rare, stream running.

A catch-up run checks what it landed in the same run. The continuous stream's landings are reported by
the stream sensor, which runs no check: declarative automation runs the first three every ten minutes
when something has landed since, and the sensor reports `stream_is_running` whenever the query starts
or stops.
"""

import dagster as dg

from txstream_dagster.defs.stream.offsets import stream_running
from txstream_dagster.defs.stream.resources import SparkResource
from txstream_dagster.resources import KafkaResource, PostgresResource
from txstream_spark.rows import one_row

FRESHNESS_MAX_MINUTES = 60
QUARANTINE_RATE_MAX = 0.01
QUARANTINE_WINDOW = "24 hours"
STREAM_IS_RUNNING = "stream_is_running"
# Checks of what the continuous stream landed: every ten minutes, when something has landed since.
EVERY_TEN_MINUTES = dg.AutomationCondition.on_cron("*/10 * * * *")

RECONCILIATION = """
WITH batches AS (
    SELECT coalesce(sum(consumed), 0) AS consumed,
           coalesce(sum(inserted), 0) AS inserted,
           coalesce(sum(updated), 0) AS updated,
           coalesce(sum(duplicates), 0) AS duplicates,
           coalesce(sum(quarantined), 0) AS quarantined
    FROM ops.stream_batches
), ranges AS (
    -- Ranges are per topic incarnation (topic_id): a recreated topic starts again at offset 0.
    SELECT r.topic_id, r.partition, r."from", r."to",
           lag(r."to") OVER (PARTITION BY b.kafka_topic, r.topic_id, r.partition ORDER BY r."from") AS previous_to
    FROM ops.stream_batches b,
         jsonb_to_recordset(b.offset_ranges) AS r(topic_id text, partition int, "from" bigint, "to" bigint)
)
SELECT b.*,
       (SELECT coalesce(sum("to" - "from" + 1), 0) FROM ranges) AS offsets_in_ranges,
       (SELECT count(*) FROM ranges WHERE "from" <= previous_to) AS overlapping_ranges,
       (SELECT count(*) FROM ranges WHERE "from" > previous_to + 1) AS gaps,
       (SELECT coalesce(sum("from" - previous_to - 1), 0) FROM ranges WHERE "from" > previous_to + 1)
           AS offsets_in_gaps,
       (SELECT count(*) FROM raw.transactions) AS rows_held,
       (SELECT count(*) FROM raw.quarantined_events) AS quarantine_held,
       -- Rows a quarantine replay inserted (its quarantine rows stay, marked): not in any batch.
       (SELECT coalesce(sum(inserted), 0) FROM ops.quarantine_replays) AS replay_inserted,
       -- Quarantine rows retention deleted (counted in the same transaction as each delete). Old batches
       -- are rolled up by retention, not deleted, so the sums and ranges above still cover every message.
       (SELECT coalesce(sum(rows_deleted), 0) FROM ops.retention_deletions
        WHERE table_name = 'raw.quarantined_events') AS quarantine_deleted
FROM batches b
"""


@dg.asset_check(
    asset="raw_transactions",
    blocking=True,
    automation_condition=EVERY_TEN_MINUTES,
    description=(
        "Every message the stream consumed is a row inserted, updated, a duplicate or quarantined; "
        "every offset of the batches' ranges was consumed and consecutive batches leave no offsets out; "
        "no offset range was applied twice; the tables hold exactly what the batches (and quarantine replays, "
        "and retention's deletions) say they wrote."
    ),
)
def every_message_is_accounted_for(postgres: PostgresResource, spark: SparkResource) -> dg.AssetCheckResult:
    with postgres.connect() as conn:
        cur = conn.execute(RECONCILIATION)
        assert cur.description is not None  # a SELECT describes its columns
        figures = dict(zip([c.name for c in cur.description], one_row(cur.fetchone()), strict=False))
    figures = {k: int(v) for k, v in figures.items()}
    problems = []
    # Offsets the ranges say were skipped: lost, unless the stream runs with failOnDataLoss=false, where
    # the source and the sink skip what the topic lost on purpose (and log it), so here it only warns.
    skipped = []
    accounted = figures["inserted"] + figures["updated"] + figures["duplicates"] + figures["quarantined"]
    if figures["consumed"] != accounted:
        problems.append(f"consumed {figures['consumed']} ≠ inserted+updated+duplicates+quarantined {accounted}")
    if figures["offsets_in_ranges"] > figures["consumed"]:
        skipped.append(
            f"the batches' offset ranges span {figures['offsets_in_ranges']} offsets but they consumed "
            f"{figures['consumed']} messages: {figures['offsets_in_ranges'] - figures['consumed']} never landed"
        )
    elif figures["offsets_in_ranges"] < figures["consumed"]:
        problems.append(
            f"batches consumed {figures['consumed']} messages but their offset ranges span only "
            f"{figures['offsets_in_ranges']} offsets"
        )
    if figures["gaps"]:
        skipped.append(
            f"{figures['gaps']} gaps between consecutive batches' offset ranges of a partition: "
            f"{figures['offsets_in_gaps']} offsets never read"
        )
    if figures["overlapping_ranges"]:
        problems.append(f"{figures['overlapping_ranges']} offset ranges overlap an earlier batch")
    if figures["rows_held"] != figures["inserted"] + figures["replay_inserted"]:
        problems.append(
            f"raw.transactions holds {figures['rows_held']} rows but batches inserted {figures['inserted']}"
            + (f" and quarantine replays {figures['replay_inserted']}" if figures["replay_inserted"] else "")
        )
    if figures["quarantine_held"] + figures["quarantine_deleted"] != figures["quarantined"]:
        problems.append(
            f"quarantine holds {figures['quarantine_held']} rows"
            + (f" (and retention deleted {figures['quarantine_deleted']})" if figures["quarantine_deleted"] else "")
            + f" but batches quarantined {figures['quarantined']}"
        )
    tolerated = bool(skipped) and not problems and not spark.fail_on_data_loss
    if tolerated:
        skipped.append(
            "tolerated because the stream runs with failOnDataLoss=false (TXSTREAM_STREAM_FAIL_ON_DATA_LOSS)"
        )
    problems += skipped
    return dg.AssetCheckResult(
        passed=not problems,
        severity=dg.AssetCheckSeverity.WARN if tolerated else dg.AssetCheckSeverity.ERROR,
        metadata={**figures, "problems": "; ".join(problems) or "none"},
        description="; ".join(problems) or None,
    )


@dg.asset_check(
    asset="raw_transactions",
    automation_condition=EVERY_TEN_MINUTES,
    description=f"The newest event landed is at most {FRESHNESS_MAX_MINUTES} minutes old.",
)
def newest_event_is_fresh(postgres: PostgresResource) -> dg.AssetCheckResult:
    newest, age_minutes = one_row(
        postgres.fetch_one(
            "SELECT max(event_time), extract(epoch FROM now() - max(event_time)) / 60 FROM raw.transactions"
        )
    )
    if newest is None:
        return dg.AssetCheckResult(
            passed=False,
            severity=dg.AssetCheckSeverity.WARN,
            description="raw.transactions is empty: nothing has landed yet",
        )
    return dg.AssetCheckResult(
        passed=float(age_minutes) <= FRESHNESS_MAX_MINUTES,
        severity=dg.AssetCheckSeverity.WARN,
        metadata={"newest_event_time": newest.isoformat(), "age_minutes": round(float(age_minutes), 1)},
    )


@dg.asset_check(
    asset="raw_transactions",
    automation_condition=EVERY_TEN_MINUTES,
    description=(
        f"Under {QUARANTINE_RATE_MAX:.0%} of the messages consumed in the last {QUARANTINE_WINDOW} were quarantined."
    ),
)
def quarantine_rate_is_low(postgres: PostgresResource) -> dg.AssetCheckResult:
    consumed, quarantined = one_row(
        postgres.fetch_one(
            "SELECT coalesce(sum(consumed), 0), coalesce(sum(quarantined), 0) FROM ops.stream_batches "
            "WHERE committed_at > now() - %s::interval",
            [QUARANTINE_WINDOW],
        )
    )
    reasons = postgres.fetch_all(
        "SELECT reason, count(*) FROM raw.quarantined_events WHERE quarantined_at > now() - %s::interval "
        "GROUP BY reason ORDER BY count(*) DESC",
        [QUARANTINE_WINDOW],
    )
    rate = quarantined / consumed if consumed else 0.0
    return dg.AssetCheckResult(
        passed=rate <= QUARANTINE_RATE_MAX,
        metadata={
            "consumed": int(consumed),
            "quarantined": int(quarantined),
            "rate": round(rate, 5),
            "reasons": dg.MetadataValue.json({reason: n for reason, n in reasons}),
        },
        description=None
        if rate <= QUARANTINE_RATE_MAX
        else (f"{rate:.2%} of messages were quarantined; see raw.quarantined_events for what producers sent wrong"),
    )


@dg.asset_check(
    asset="raw_transactions",
    name=STREAM_IS_RUNNING,
    description="In continuous mode, a stream query is landing events: the stream sensor reports this "
    "check whenever the query starts or stops, and starts it again when it has stopped.",
)
def stream_is_running(postgres: PostgresResource, kafka: KafkaResource, spark: SparkResource) -> dg.AssetCheckResult:
    evaluation = stream_is_running_evaluation(stream_running(postgres, kafka.topic), spark.continuous)
    return dg.AssetCheckResult(passed=evaluation.passed, description=evaluation.description)


def stream_is_running_evaluation(running: bool, continuous: bool) -> dg.AssetCheckEvaluation:
    """What the stream sensor reports of `stream_is_running`. Pure."""
    if running:
        description = "A stream query holds the topic's writer lock: events land as they arrive."
    elif continuous:
        description = (
            "No stream query is running: events are not landing. stream_lag_sensor starts the continuous "
            "run again (a minute after a failure at the soonest); if it keeps failing, its run's logs say why."
        )
    else:
        description = "Catch-up mode (TXSTREAM_STREAM_MODE): the stream runs when the topic has lag, then ends."
    return dg.AssetCheckEvaluation(
        asset_key=dg.AssetKey("raw_transactions"),
        check_name=STREAM_IS_RUNNING,
        passed=running or not continuous,
        description=description,
    )
