"""The reconciliation stage: the daily `stripe_reconciliation` asset, its checks and its schedule."""

import dagster as dg

from txstream_dagster.defs.reconciliation.assets import stripe_reconciliation
from txstream_dagster.defs.reconciliation.schedules import stripe_reconciliation_daily, stripe_reconciliation_job

defs = dg.Definitions(
    assets=[stripe_reconciliation],
    jobs=[stripe_reconciliation_job],
    schedules=[stripe_reconciliation_daily],
)
