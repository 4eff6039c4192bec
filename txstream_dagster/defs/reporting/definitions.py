"""The reporting stage: the daily KPI report and the sensor that evaluates its automation condition."""

import dagster as dg

from txstream_dagster.db.logins import Login
from txstream_dagster.defs.reporting.assets import daily_kpi_report
from txstream_dagster.run_pods import run_pod_tags

# Its own sensor, running by default like the dbt stage's: the report's on_cron
# condition is evaluated without anyone switching automation on.
reporting_automation_sensor = dg.AutomationConditionSensorDefinition(
    "reporting_automation_sensor",
    target=dg.AssetSelection.assets(daily_kpi_report),
    default_status=dg.DefaultSensorStatus.RUNNING,
    minimum_interval_seconds=60,
    run_tags=run_pod_tags(login=Login.READER),  # on Kubernetes the pod gets the read-only login
)

defs = dg.Definitions(assets=[daily_kpi_report], sensors=[reporting_automation_sensor])
