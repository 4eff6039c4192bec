"""Every dbt model and seed as a Dagster asset; every dbt test as an asset check."""

import os

import dagster as dg
from dagster_dbt import DbtCliResource, dbt_assets
from pydantic import Field

from txstream_dagster.defs.dbt.project import txstream_dbt_project
from txstream_dagster.defs.dbt.translator import TxstreamDbtTranslator


class DbtBuildConfig(dg.Config):
    full_refresh: bool = Field(
        default=False,
        description="Rebuild the incremental models from all of history (dbt --full-refresh).",
    )


# Builds that automation requests run below the stream's priority: with the stream landing every second
# they follow each other all day, and on a small machine a dbt parse would otherwise delay the next
# micro-batch by seconds. The panels do not wait for them (they read fct_transactions_live).
AUTOMATION_NICENESS = 10


def yield_cpu_to_the_stream(context: dg.AssetExecutionContext) -> None:
    """Lower this run's priority (and its dbt process's) when automation requested it: the run is a
    process of its own then, never a caller's (tests and `dagster asset materialize` keep theirs)."""
    if context.run.tags.get("dagster/from_automation_condition") == "true" and os.nice(0) < AUTOMATION_NICENESS:
        os.nice(AUTOMATION_NICENESS - os.nice(0))


def dbt_build_args(config: DbtBuildConfig) -> list[str]:
    return ["build", *(["--full-refresh"] if config.full_refresh else [])]


@dbt_assets(
    manifest=txstream_dbt_project().manifest_path,
    project=txstream_dbt_project(),
    dagster_dbt_translator=TxstreamDbtTranslator(),
    name="txstream_dbt_models",
)
def txstream_dbt_models(context: dg.AssetExecutionContext, dbt: DbtCliResource, config: DbtBuildConfig):
    # `build` runs each selected model's tests right after it, so a failing
    # error-severity test stops the models downstream of it in the same run.
    # dbt signs in as the transformer: the `dbt` resource's profile says so.
    yield_cpu_to_the_stream(context)
    yield from dbt.cli(dbt_build_args(config), context=context).stream().fetch_row_counts()
