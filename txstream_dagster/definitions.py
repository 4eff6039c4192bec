"""The txstream code location: the Definitions of every stage, merged, with shared resources."""

import dagster as dg

from txstream_dagster.defs.dbt import definitions as dbt
from txstream_dagster.defs.forex import definitions as forex
from txstream_dagster.defs.reporting import definitions as reporting
from txstream_dagster.defs.stream import definitions as stream
from txstream_dagster.defs.stripe_source import definitions as stripe_source
from txstream_dagster.resources import shared_resources

# In data-flow order: Stripe → topic → stream → raw tables; forex; dbt marts; reports.
defs = dg.Definitions.merge(
    dg.Definitions(resources=shared_resources()),
    stripe_source.defs,
    stream.defs,
    forex.defs,
    dbt.defs,
    reporting.defs,
)
