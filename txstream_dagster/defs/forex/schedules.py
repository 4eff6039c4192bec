"""The daily forex run, after the ECB publishes its reference rates (~16:00 CET)."""

from datetime import UTC, datetime, timedelta

import dagster as dg

from txstream_dagster.defs.forex.assets import forex_partitions, forex_rates

# Selecting the asset selects its checks too: they run on the partitions just written.
forex_rates_job = dg.define_asset_job(
    "forex_rates_job", selection=dg.AssetSelection.assets(forex_rates), partitions_def=forex_partitions
)


@dg.schedule(
    job=forex_rates_job,
    cron_schedule="0 17 * * *",
    execution_timezone="Europe/Berlin",
    default_status=dg.DefaultScheduleStatus.RUNNING,
)
def forex_rates_daily(context: dg.ScheduleEvaluationContext) -> list[dg.RunRequest]:
    """Today's partition, and yesterday's again: a day that had to fall back to a lower-ranked
    source (its better source had not published yet) is upgraded the next evening; a day
    already complete is left as it is, because a fetch never makes a partition worse."""
    now = context.scheduled_execution_time or datetime.now(UTC)
    today = now.astimezone(UTC).date()
    return [
        dg.RunRequest(run_key=f"forex_rates/{day.isoformat()}@{today.isoformat()}", partition_key=day.isoformat())
        for day in (today - timedelta(days=1), today)
    ]
