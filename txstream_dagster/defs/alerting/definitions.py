"""The alerting stage: the run-failure sensor. Grafana's alert rules are grafana/provisioning/alerting/."""

import dagster as dg

from txstream_dagster.defs.alerting.sensors import run_failure_alert_sensor

defs = dg.Definitions(sensors=[run_failure_alert_sensor])
