"""The Stripe source stage: the topic asset and the Stripe account it reads (kafka/postgres are shared)."""

import dagster as dg

from txstream_dagster.defs.stripe_source.assets import stripe_events_topic

defs = dg.Definitions(
    assets=[stripe_events_topic],
)
