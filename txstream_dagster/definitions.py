"""The txstream code location: the Definitions of every stage, merged, with shared resources."""

import dagster as dg

from txstream_dagster.defs.stream import definitions as stream
from txstream_dagster.resources import shared_resources

defs = dg.Definitions.merge(
    dg.Definitions(resources=shared_resources()),
    stream.defs,
)
