"""The stream sensor: on each tick compare the topic's end offsets with what has landed.

- a stream query is running (the continuous run, or `txstream stream --continuous` outside Dagster)
  and advanced the committed offsets → report that as a materialization of `raw_transactions`, so
  the models downstream update;
- none is running: in continuous mode (the default) → start the continuous run again (not sooner
  than a minute after one failed); in catch-up mode, when there is lag → request a catch-up run;
- the query started or stopped → report the `stream_is_running` check;
- the topic grew → observe `stripe_events_topic` with its end offsets.
Each tick is a few small queries: end offsets from fetch high watermarks and
one indexed read of ops.stream_offsets.
"""

import json
import time

import dagster as dg

from txstream_dagster.dagster_runs import UNFINISHED, job_in_progress
from txstream_dagster.defs.stream.checks import stream_is_running_evaluation
from txstream_dagster.defs.stream.jobs import stream_catch_up_job, stream_continuous_job
from txstream_dagster.defs.stream.offsets import committed_offsets, lag_by_partition, record_lag, stream_running
from txstream_dagster.defs.stream.resources import SparkResource
from txstream_dagster.resources import KafkaResource, PostgresResource

RESTART_BACKOFF_S = 60


def next_cursor(
    previous: str | None, end_offsets: dict[int, int], committed_total: int, running: bool
) -> tuple[dict, dict]:
    """(previous state, new state) of the sensor cursor. Pure."""
    before = {"end_offsets": {}, "committed_total": None, "running": None, **(json.loads(previous) if previous else {})}
    now = {
        "end_offsets": {str(p): o for p, o in sorted(end_offsets.items())},
        "committed_total": committed_total,
        "running": running,
    }
    return before, now


def failed_recently(context: dg.SensorEvaluationContext, job_name: str, within_s: float) -> bool:
    """Whether the last run of `job_name` failed less than `within_s` ago (a stream that cannot start,
    Kafka down say, is not started again every few seconds, each failure an alert)."""
    records = context.instance.get_run_records(dg.RunsFilter(job_name=job_name), limit=1)
    if not records:
        return False
    record = records[0]
    if record.dagster_run.status != dg.DagsterRunStatus.FAILURE or record.end_time is None:
        return False
    return time.time() - record.end_time < within_s


def stream_runs_in_progress(context: dg.SensorEvaluationContext) -> bool:
    """A stream run queued, starting (Spark takes seconds before it holds the writer lock), or ending."""
    return bool(
        context.instance.get_runs(
            filters=dg.RunsFilter(
                tags={"txstream/stream": ["catch-up", "continuous"]},
                statuses=[*UNFINISHED, dg.DagsterRunStatus.CANCELING],  # still holding its place
            ),
            limit=1,
        )
    )


@dg.sensor(
    jobs=[stream_continuous_job, stream_catch_up_job],
    minimum_interval_seconds=5,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="Keeps the continuous stream running (catch-up mode: requests a run when the topic has "
    "messages not yet landed) and reports what the stream lands as materializations of raw_transactions.",
)
def stream_lag_sensor(
    context: dg.SensorEvaluationContext, kafka: KafkaResource, postgres: PostgresResource, spark: SparkResource
) -> dg.SensorResult | dg.SkipReason:
    topic = kafka.describe_topic()
    end_offsets = kafka.end_offsets()
    committed = committed_offsets(postgres, kafka.topic)
    lag = lag_by_partition(end_offsets, committed, topic.topic_id)
    record_lag(postgres, kafka.topic, end_offsets, lag)
    running = stream_running(postgres, kafka.topic)
    before, now = next_cursor(context.cursor, end_offsets, committed.total, running)
    total_lag = sum(lag.values())

    events: list = []
    if now["end_offsets"] != before["end_offsets"]:
        events.append(
            dg.AssetObservation(
                asset_key="stripe_events_topic",
                metadata={
                    "end_offsets": dg.MetadataValue.json(now["end_offsets"]),
                    "messages": sum(end_offsets.values()),
                },
            )
        )
    if spark.continuous and running != before["running"]:
        events.append(stream_is_running_evaluation(running, spark.continuous))
    runs: list[dg.RunRequest] = []
    if running:
        # A catch-up run reports what it landed itself, when it ends.
        if (
            before["committed_total"] is not None
            and committed.total > before["committed_total"]
            and not job_in_progress(context, stream_catch_up_job.name)
        ):
            events.append(
                dg.AssetMaterialization(
                    asset_key="raw_transactions",
                    description="Landed by the continuous stream",
                    metadata={"messages_landed": committed.total - before["committed_total"], "lag": total_lag},
                )
            )
    elif stream_runs_in_progress(context):
        pass  # starting (Spark takes a few seconds before it holds the writer lock) or ending
    elif spark.continuous:
        if failed_recently(context, stream_continuous_job.name, RESTART_BACKOFF_S):
            return dg.SkipReason(
                f"the continuous stream's last run failed less than {RESTART_BACKOFF_S} s ago; starting it "
                "again after that (its error is in the run's logs)"
            )
        runs.append(dg.RunRequest(job_name=stream_continuous_job.name, tags={"txstream/lag": str(total_lag)}))
    elif total_lag > 0:
        runs.append(
            dg.RunRequest(
                job_name=stream_catch_up_job.name,
                run_key=f"{topic.topic_id}:{json.dumps(now['end_offsets'])}",
                tags={"txstream/lag": str(total_lag)},
            )
        )

    if not events and not runs:
        return dg.SkipReason(f"no new messages (lag {total_lag})")
    return dg.SensorResult(run_requests=runs, asset_events=events, cursor=json.dumps(now))
