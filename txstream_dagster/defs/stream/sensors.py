"""The stream sensor: on each tick compare the topic's end offsets with what has landed.

- lag and no stream running → request a catch-up run of `raw_transactions`;
- a continuous stream (outside Dagster) advanced the committed offsets → report
  that as a materialization of `raw_transactions`, so downstream models update;
- the topic grew → observe `stripe_events_topic` with its end offsets.
Each tick is a few small queries: end offsets from fetch high watermarks and
one indexed read of ops.stream_offsets.
"""

import json

import dagster as dg

from txstream_dagster.dagster_runs import job_in_progress
from txstream_dagster.defs.stream.offsets import committed_offsets, lag_by_partition, record_lag, stream_running
from txstream_dagster.defs.stream.resources import SparkResource
from txstream_dagster.resources import KafkaResource, PostgresResource
from txstream_dagster.run_pods import run_pod_tags

stream_catch_up_job = dg.define_asset_job(
    "stream_catch_up",
    selection=["raw_transactions"],
    description="Run the Spark job to the end of the topic and stop.",
    # Needs run monitoring (dagster.yaml): a stuck catch-up is stopped after an hour. On Kubernetes
    # its pod is the Spark driver: the only runs with Spark's service account.
    tags={"dagster/max_runtime": 3600, "txstream/stream": "catch-up", **run_pod_tags(launches_spark=True)},
)


def next_cursor(previous: str | None, end_offsets: dict[int, int], committed_total: int) -> tuple[dict, dict]:
    """(previous state, new state) of the sensor cursor. Pure."""
    before = json.loads(previous) if previous else {"end_offsets": {}, "committed_total": None}
    now = {"end_offsets": {str(p): o for p, o in sorted(end_offsets.items())}, "committed_total": committed_total}
    return before, now


@dg.sensor(
    job=stream_catch_up_job,
    minimum_interval_seconds=15,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="Requests a catch-up run of the stream when the topic has messages not yet landed.",
)
def stream_lag_sensor(
    context: dg.SensorEvaluationContext, kafka: KafkaResource, postgres: PostgresResource, spark: SparkResource
) -> dg.SensorResult | dg.SkipReason:
    topic = kafka.describe_topic()
    end_offsets = kafka.end_offsets()
    committed = committed_offsets(postgres, kafka.topic)
    lag = lag_by_partition(end_offsets, committed, topic.topic_id)
    record_lag(postgres, kafka.topic, end_offsets, lag)
    before, now = next_cursor(context.cursor, end_offsets, committed.total)

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
    total_lag = sum(lag.values())
    runs: list[dg.RunRequest] = []
    if stream_running(postgres, kafka.topic):
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
    elif total_lag > 0 and not job_in_progress(context, stream_catch_up_job.name):
        runs.append(
            dg.RunRequest(
                run_key=f"{topic.topic_id}:{json.dumps(now['end_offsets'])}",
                tags={"txstream/lag": str(total_lag)},
            )
        )

    if not events and not runs:
        return dg.SkipReason(f"no new messages (lag {total_lag})")
    return dg.SensorResult(run_requests=runs, asset_events=events, cursor=json.dumps(now))
