"""The dbt stage: models as assets, tests as checks, rebuilt by declarative automation."""

import dagster as dg

from txstream_dagster.db.logins import Login
from txstream_dagster.defs.dbt.assets import txstream_dbt_models
from txstream_dagster.defs.dbt.checks import flagged_records, fx_rate_missing_charges
from txstream_dagster.run_pods import run_pod_tags

# Evaluates the models' and checks' automation conditions (translator.py): when
# the stream lands a micro-batch or forex rates arrive, the affected models and
# their tests are requested in one run. Running by default, so a fresh
# deployment keeps the marts current without anyone switching it on.
dbt_automation_sensor = dg.AutomationConditionSensorDefinition(
    "dbt_automation_sensor",
    target=dg.AssetSelection.assets(txstream_dbt_models),
    default_status=dg.DefaultSensorStatus.RUNNING,
    minimum_interval_seconds=30,
    # One dbt build at a time (the run queue limits this tag); on Kubernetes the pod gets dbt's login.
    run_tags={"txstream/dbt": "build", **run_pod_tags(login=Login.TRANSFORMER)},
)

defs = dg.Definitions(
    assets=[txstream_dbt_models],
    asset_checks=[fx_rate_missing_charges, flagged_records],
    sensors=[dbt_automation_sensor],
)
