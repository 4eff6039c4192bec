"""Always-on ingestion: with a Stripe key configured, the topic is fed from Stripe without anyone asking.

Each tick requests one pull (a run of `stripe_events_topic`: everything new since the
cursor, or the backfill a first pull needs) unless the last one is still running, so
a deployed stack (compose, Helm, `dagster dev`) keeps ingesting with the cursor
discipline of every pull. Without a key it does nothing: synthetic objects are
published on request (`txstream produce`, or materialising the asset).
"""

import dagster as dg

from txstream_dagster.dagster_runs import job_in_progress
from txstream_dagster.defs.stripe_source.resources import StripeResource

PULL_EVERY_SECONDS = 60

stripe_ingestion_job = dg.define_asset_job(
    "stripe_ingestion",
    selection=["stripe_events_topic"],
    description="Publish everything new in Stripe since the cursor (with STRIPE_API_KEY set).",
    tags={"txstream/source": "stripe"},
)


@dg.sensor(
    job=stripe_ingestion_job,
    minimum_interval_seconds=PULL_EVERY_SECONDS,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description=f"Pulls from Stripe every {PULL_EVERY_SECONDS} s when STRIPE_API_KEY is set.",
)
def stripe_ingestion_sensor(
    context: dg.SensorEvaluationContext, stripe: StripeResource
) -> dg.RunRequest | dg.SkipReason:
    if not stripe.configured:
        return dg.SkipReason(
            "STRIPE_API_KEY is not set: nothing to pull. Synthetic objects are published by `txstream produce` "
            "or by materialising stripe_events_topic."
        )
    if job_in_progress(context, stripe_ingestion_job.name):
        return dg.SkipReason("the previous pull is still running")
    return dg.RunRequest()
