"""`raw_transactions`: the stream's sink table, caught up by running the Spark job to the topic's end."""

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
    description=(
        "One row per Stripe object (charge, refund, dispute), latest version wins, in raw.transactions; "
        "malformed messages in raw.quarantined_events. Materialised by running the Spark job with "
        "trigger(availableNow): read to the topic's end, land it, stop."
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
