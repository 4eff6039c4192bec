import dagster as dg

from txstream_dagster.defs.stream.assets import raw_transactions
from txstream_dagster.defs.stream.checks import (
    every_message_is_accounted_for,
    newest_event_is_fresh,
    quarantine_rate_is_low,
    stream_is_running,
)
from txstream_dagster.defs.stream.jobs import stream_catch_up_job, stream_continuous_job
from txstream_dagster.defs.stream.replay import replay_quarantine_job
from txstream_dagster.defs.stream.sensors import stream_lag_sensor

defs = dg.Definitions(
    assets=[raw_transactions],
    asset_checks=[every_message_is_accounted_for, newest_event_is_fresh, quarantine_rate_is_low, stream_is_running],
    jobs=[stream_catch_up_job, stream_continuous_job, replay_quarantine_job],
    sensors=[stream_lag_sensor],
)
