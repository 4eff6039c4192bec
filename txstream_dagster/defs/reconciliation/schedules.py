"""The daily reconciliation run, after the day has ended and its stragglers have landed."""

from datetime import UTC, datetime, timedelta

import dagster as dg

from txstream_dagster.defs.reconciliation.assets import stripe_reconciliation

stripe_reconciliation_job = dg.define_asset_job(
    "stripe_reconciliation_job",
    selection=dg.AssetSelection.assets(stripe_reconciliation),  # partitioned as the asset is
)
# Days reconciled each morning: yesterday, and the day before again (an object landed late is then seen).
DAYS_BACK = (1, 2)


@dg.schedule(
    job=stripe_reconciliation_job,
    cron_schedule="0 4 * * *",
    execution_timezone="UTC",
    default_status=dg.DefaultScheduleStatus.RUNNING,
)
def stripe_reconciliation_daily(context: dg.ScheduleEvaluationContext) -> list[dg.RunRequest]:
    today = (context.scheduled_execution_time or datetime.now(UTC)).astimezone(UTC).date()
    return [
        dg.RunRequest(run_key=f"reconciliation/{day.isoformat()}@{today.isoformat()}", partition_key=day.isoformat())
        for day in (today - timedelta(days=back) for back in DAYS_BACK)
    ]
