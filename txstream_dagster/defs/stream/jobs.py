"""The two ways the stream runs in Dagster, both launched by `stream_lag_sensor`.

- `stream_continuous` (TXSTREAM_STREAM_MODE=continuous, the default): one run that keeps the Spark
  query running with a processing-time trigger until it is stopped. Events land within seconds; the
  sensor reports what lands as materializations of `raw_transactions` and starts a new run when this
  one ends. It is an op, not the asset: a run materialising an asset for days would hold every dbt
  model downstream back ("an upstream asset is being built").
- `stream_catch_up`: runs of the `raw_transactions` asset that read to the topic's end and stop. The
  sensor launches them in catch-up mode; in either mode, launch one by hand after stopping the continuous
  run (a reprocessing after a reset, say): the `txstream/stream` tag lets one stream run at a time.
"""

import dagster as dg

from txstream_dagster.defs.stream.assets import STREAM_POOL
from txstream_dagster.defs.stream.resources import SparkResource
from txstream_dagster.resources import KafkaResource, PostgresResource
from txstream_dagster.run_pods import run_pod_tags

STREAM_TAG = "txstream/stream"

stream_catch_up_job = dg.define_asset_job(
    "stream_catch_up",
    selection=["raw_transactions"],
    description="Run the Spark job to the end of the topic and stop.",
    # Needs run monitoring (dagster.yaml): a stuck catch-up is stopped after an hour. On Kubernetes
    # its pod is the Spark driver: the only runs with Spark's service account.
    tags={"dagster/max_runtime": 3600, STREAM_TAG: "catch-up", **run_pod_tags(launches_spark=True)},
)


@dg.op(
    pool=STREAM_POOL,
    description="spark-submit of the streaming job with a processing-time trigger: lands events as they "
    "arrive until the run is terminated (SIGTERM stops the query; a batch in flight is replayed on restart).",
)
def stream_until_stopped(
    context: dg.OpExecutionContext,
    spark: SparkResource,
    postgres: PostgresResource,
    kafka: KafkaResource,
    pipes_subprocess_client: dg.PipesSubprocessClient,
) -> None:
    command = spark.submit_command(
        bootstrap=kafka.bootstrap, topic=kafka.topic, trigger="processing-time", interval=spark.trigger_interval
    )
    context.log.info(
        f"spark-submit to {spark.master}, a micro-batch every {spark.trigger_interval}, "
        f"checkpoint {spark.checkpoint_for(kafka.topic)}"
    )
    pipes_subprocess_client.run(context=context, command=command, env=spark.job_env(postgres))


@dg.job(
    name="stream_continuous",
    description="Keep the Spark job landing events within seconds until the run is terminated.",
    tags={STREAM_TAG: "continuous", **run_pod_tags(launches_spark=True)},
)
def stream_continuous_job() -> None:
    stream_until_stopped()
