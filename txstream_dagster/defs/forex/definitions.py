"""The forex stage: the `forex_rates` asset, its checks, its daily schedule and its source resource."""

import dagster as dg

from txstream_dagster.defs.forex.assets import forex_rates
from txstream_dagster.defs.forex.checks import FOREX_CHECKS
from txstream_dagster.defs.forex.schedules import forex_rates_daily, forex_rates_job

defs = dg.Definitions(
    assets=[forex_rates],
    asset_checks=FOREX_CHECKS,
    jobs=[forex_rates_job],
    schedules=[forex_rates_daily],
)
