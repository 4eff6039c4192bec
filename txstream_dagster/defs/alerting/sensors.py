"""The run-failure sensor: every failed run is recorded where Grafana alerts on it, and announced.

Grafana cannot ask Dagster, so each failure becomes a row in ops.dagster_run_failures (read
through monitoring.dagster_run_failures by the "Dagster run failed" alert); the same facts go
to the alert webhook as JSON, when one is configured. Dagster advances a run-status sensor's
cursor past a run even when the sensor raises, so nothing here is retried: a webhook that fails
is logged and the row stays; a warehouse that fails still gets the webhook sent, then the tick
fails to show it.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import dagster as dg
import psycopg

from txstream_dagster.defs.alerting.resources import AlertWebhookError, AlertWebhookResource
from txstream_dagster.resources import PostgresResource
from txstream_dagster.resources.postgres import WarehouseUnavailable

ERROR_MAX_CHARS = 2_000  # a row and a chat message, not a log: the run's page has the whole trace


@dataclass(frozen=True)
class RunFailure:
    run_id: str
    job_name: str
    failed_at: datetime
    message: str
    failed_steps: list[str]
    error: str | None
    partition_key: str | None

    def webhook_message(self, *, recorded: bool) -> dict[str, Any]:
        """The webhook's JSON: `text` for chat webhooks (Slack, Mattermost), the fields for anything else."""
        where = f" (partition {self.partition_key})" if self.partition_key else ""
        text = f"txstream: Dagster run {self.run_id} of {self.job_name}{where} failed: {self.message}"
        if self.error:
            text += f"\n{self.error}"
        if not recorded:
            text += "\n(Not recorded in ops.dagster_run_failures: the warehouse refused it; see the sensor's tick.)"
        return {
            "text": text,
            "source": "txstream",
            "alert": "dagster_run_failed",
            "run_id": self.run_id,
            "job_name": self.job_name,
            "failed_at": self.failed_at.isoformat(),
            "message": self.message,
            "failed_steps": self.failed_steps,
            "error": self.error,
            "partition_key": self.partition_key,
            "recorded": recorded,
        }


def root_cause(error: Any) -> str:
    """The innermost error's message (the ValueError an asset raised, not Dagster's wrapper), shortened."""
    while error.cause is not None:
        error = error.cause
    return error.message.strip()[:ERROR_MAX_CHARS]


def run_failure(context: dg.RunFailureSensorContext) -> RunFailure:
    run = context.dagster_run
    step_failures = context.get_step_failure_events()
    # A step's error (StepFailureData), else the run's own (JobFailureData: the run worker died, say).
    errors = [getattr(event.event_specific_data, "error", None) for event in [*step_failures, context.failure_event]]
    error = next((error for error in errors if error is not None), None)
    record = context.instance.get_run_record_by_id(run.run_id)
    end_time = record.end_time if record is not None else None
    return RunFailure(
        run_id=run.run_id,
        job_name=run.job_name,
        failed_at=datetime.fromtimestamp(end_time, UTC) if end_time else datetime.now(UTC),
        message=context.failure_event.message or "The run failed.",
        failed_steps=[event.step_key for event in step_failures if event.step_key],
        error=root_cause(error) if error is not None else None,
        partition_key=context.partition_key,
    )


def record_run_failure(postgres: PostgresResource, failure: RunFailure) -> None:
    """One row per run: a second evaluation of the same failure changes nothing."""
    with postgres.connect() as conn:
        conn.execute(
            """INSERT INTO ops.dagster_run_failures
                   (run_id, job_name, failed_at, message, failed_steps, error, partition_key)
               VALUES (%s, %s, %s, %s, %s, %s, %s)
               ON CONFLICT (run_id) DO NOTHING""",
            [
                failure.run_id,
                failure.job_name,
                failure.failed_at,
                failure.message,
                failure.failed_steps,
                failure.error,
                failure.partition_key,
            ],
        )


@dg.run_failure_sensor(
    default_status=dg.DefaultSensorStatus.RUNNING,
    minimum_interval_seconds=30,
    description=(
        "Records every failed run in ops.dagster_run_failures (Grafana's 'Dagster run failed' alert reads it) "
        "and POSTs it to TXSTREAM_ALERT_WEBHOOK_URL when that is set."
    ),
)
def run_failure_alert_sensor(
    context: dg.RunFailureSensorContext, postgres: PostgresResource, alert_webhook: AlertWebhookResource
) -> None:
    failure = run_failure(context)
    not_recorded: Exception | None = None
    try:
        record_run_failure(postgres, failure)
    except (WarehouseUnavailable, psycopg.Error) as exc:
        not_recorded = exc
    if alert_webhook.configured:
        try:
            alert_webhook.post(failure.webhook_message(recorded=not_recorded is None))
        except AlertWebhookError as exc:
            context.log.error(f"Run {failure.run_id} of {failure.job_name} failed; the webhook was not told: {exc}")
    if not_recorded is not None:
        raise not_recorded
