"""The txstream code location: the Definitions of every stage, merged, with the resources built from the settings."""

import dagster as dg

from txstream_dagster.defs.alerting import definitions as alerting
from txstream_dagster.defs.dbt import definitions as dbt
from txstream_dagster.defs.forex import definitions as forex
from txstream_dagster.defs.reconciliation import definitions as reconciliation
from txstream_dagster.defs.reporting import definitions as reporting
from txstream_dagster.defs.retention import definitions as retention
from txstream_dagster.defs.stream import definitions as stream
from txstream_dagster.defs.stripe_source import definitions as stripe_source
from txstream_dagster.resources.build import build_resources
from txstream_dagster.settings import Settings, load_settings


def build_definitions(settings: Settings) -> dg.Definitions:
    # In data-flow order: Stripe → topic → stream → raw tables (reconciled with Stripe daily); forex; dbt marts;
    # reports; then alerts on failed runs.
    return dg.Definitions.merge(
        stripe_source.defs,
        stream.defs,
        reconciliation.defs,
        forex.defs,
        dbt.defs,
        reporting.defs,
        retention.defs,
        alerting.defs,
        dg.Definitions(resources=build_resources(settings)),
    )


@dg.definitions
def defs() -> dg.Definitions:
    """The settings are read here, once, when Dagster loads the code location."""
    return build_definitions(load_settings())
