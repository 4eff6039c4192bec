"""The retention stage: a daily job deleting (or rolling up) what is older than its retention."""

import dagster as dg

from txstream_dagster.defs.retention.cleanup import apply_retention
from txstream_dagster.defs.retention.resources import RetentionPolicy
from txstream_dagster.resources import PostgresResource


@dg.op(
    description="Roll up the stream's old batches; delete old lag observations, dbt runs and quarantined messages, "
    "never inside the reconciliation window."
)
def apply_retention_policy(
    context: dg.OpExecutionContext, postgres: PostgresResource, retention: RetentionPolicy
) -> dg.Output[None]:
    report = apply_retention(postgres, retention)
    context.log.info(
        f"retention: deleted {report.deleted}; {report.batches_rolled_up} batches in {report.rollup_rows} rollup rows"
    )
    return dg.Output(
        None,
        metadata={
            **{f"deleted {table}": rows for table, rows in report.deleted.items()},
            "stream batches rolled up": report.batches_rolled_up,
            "rollup rows written": report.rollup_rows,
            "hours kept for overlapping ranges": dg.MetadataValue.json(report.hours_kept_for_overlaps),
            "reconcile_days": retention.reconcile_days,
            "ops_retention_days": retention.ops_retention_days,
            "quarantine_retention_days": retention.quarantine_retention_days,
        },
    )


@dg.job(description="Apply the retention policy (TXSTREAM_OPS_RETENTION_DAYS, TXSTREAM_QUARANTINE_RETENTION_DAYS).")
def ops_retention_job() -> None:
    apply_retention_policy()


ops_retention_daily = dg.ScheduleDefinition(
    name="ops_retention_daily",
    job=ops_retention_job,
    cron_schedule="30 3 * * *",
    execution_timezone="UTC",
    default_status=dg.DefaultScheduleStatus.RUNNING,
    description="Every night, when the pipeline is quiet.",
)

defs = dg.Definitions(jobs=[ops_retention_job], schedules=[ops_retention_daily])
