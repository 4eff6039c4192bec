"""`raw_transactions`: the stream's sink table, caught up by running the Spark job to the topic's end."""

from datetime import timedelta

import dagster as dg

from txstream_dagster.defs.stream.offsets import committed_offsets
from txstream_dagster.defs.stream.resources import SparkResource
from txstream_dagster.resources import KafkaResource, PostgresResource

# One Spark query per checkpoint at a time: runs of this asset queue behind each other.
STREAM_POOL = "txstream_stream"


@dg.asset(
    key="raw_transactions",
    deps=["stripe_events_topic"],
    group_name="stream",
    kinds={"spark", "kafka", "postgres"},
    pool=STREAM_POOL,
    # The continuous stream lands (and the sensor reports) every few seconds while events flow: two quiet
    # minutes are worth a look, ten mean nothing is landing (the stream_is_running check says whether it runs).
    freshness_policy=dg.FreshnessPolicy.time_window(
        fail_window=timedelta(minutes=10), warn_window=timedelta(minutes=2)
    ),
    description=(
        "One row per Stripe object (charge, refund, dispute, balance transaction, payout), latest version wins, "
        "in raw.transactions; "
        "malformed messages in raw.quarantined_events. Landed within seconds by the continuous stream "
        "(job stream_continuous, kept running by stream_lag_sensor, which reports each landing here), or "
        "materialised by a catch-up run: the Spark job with trigger(availableNow) reads to the topic's end, "
        "lands it and stops."
    ),
)
def raw_transactions(
    context: dg.AssetExecutionContext,
    spark: SparkResource,
    postgres: PostgresResource,
    kafka: KafkaResource,
    pipes_subprocess_client: dg.PipesSubprocessClient,
) -> dg.MaterializeResult:
    before = committed_offsets(postgres, kafka.topic)
    command = spark.submit_command(bootstrap=kafka.bootstrap, topic=kafka.topic, trigger="available-now")
    context.log.info(f"spark-submit to {spark.master}, checkpoint {spark.checkpoint_for(kafka.topic)}")
    invocation = pipes_subprocess_client.run(context=context, command=command, env=spark.job_env(postgres))
    reported = invocation.get_materialize_result()
    after = committed_offsets(postgres, kafka.topic)
    return dg.MaterializeResult(
        metadata={
            **(reported.metadata or {}),
            "offsets_before": dg.MetadataValue.json({str(p): o for p, o in sorted(before.next_offsets.items())}),
            "offsets_after": dg.MetadataValue.json({str(p): o for p, o in sorted(after.next_offsets.items())}),
            "messages_landed": after.total - before.total if after.topic_id == before.topic_id else after.total,
        }
    )
