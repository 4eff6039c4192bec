"""The Stripe source stage: the topic asset, and the sensor that keeps it fed from Stripe."""

import dagster as dg

from txstream_dagster.defs.stripe_source.assets import stripe_events_topic
from txstream_dagster.defs.stripe_source.sensors import stripe_ingestion_job, stripe_ingestion_sensor

defs = dg.Definitions(
    assets=[stripe_events_topic],
    jobs=[stripe_ingestion_job],
    sensors=[stripe_ingestion_sensor],
)
