"""The code location as a whole: it loads, and its lineage is what the design says.

The snapshot below is the asset graph: a change to the lineage shows up here in review.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import dagster as dg

from txstream_dagster.definitions import defs

REPO_ROOT = Path(__file__).resolve().parents[1]

LINEAGE = {
    "stripe_events_topic": [],
    "raw_transactions": ["stripe_events_topic"],
    "forex_rates": [],
    "seeds/currencies": [],
    "staging/stg_stripe__charges": ["raw_transactions"],
    "staging/stg_stripe__refunds": ["raw_transactions"],
    "staging/stg_stripe__disputes": ["raw_transactions"],
    "staging/stg_forex__rates": ["forex_rates"],
    "marts/dim_currencies": ["seeds/currencies"],
    "marts/dim_customers": ["staging/stg_stripe__charges"],
    "marts/dim_dates": [],
    "marts/dim_outcomes": ["staging/stg_stripe__charges"],
    "marts/dim_payment_methods": ["staging/stg_stripe__charges"],
    "marts/fct_transactions": ["marts/dim_currencies", "staging/stg_forex__rates", "staging/stg_stripe__charges",
                               "staging/stg_stripe__disputes", "staging/stg_stripe__refunds"],
    "marts/agg_daily_revenue": ["marts/dim_payment_methods", "marts/fct_transactions"],
    "monitoring/fx_rate_missing_by_currency": ["marts/fct_transactions"],
    "monitoring/pipeline_freshness": ["forex_rates", "ops/stream_batches", "raw_transactions"],
    "monitoring/stream_ingestion_per_minute": ["ops/stream_batches"],
    "monitoring/stream_lag_history": ["ops/stream_lag"],
    "monitoring/stream_lag_latest": ["ops/stream_lag"],
    "monitoring/stream_quarantine_by_reason": ["raw/quarantined_events"],
    "monitoring/stream_quarantine_per_minute": ["raw/quarantined_events"],
    "monitoring/dbt_model_freshness": ["ops/dbt_node_runs"],
    "ops/dbt_node_runs": [],
    "ops/stream_batches": [],
    "ops/stream_lag": [],
    "raw/quarantined_events": [],
    "daily_kpi_report": ["marts/agg_daily_revenue"],
}


def test_the_asset_graph_is_the_designed_lineage():
    graph = defs.resolve_asset_graph()
    actual = {
        key.to_user_string(): sorted(parent.to_user_string() for parent in graph.get(key).parent_keys)
        for key in graph.get_all_asset_keys()
    }
    assert actual == LINEAGE


def test_the_stream_sink_carries_its_checks_and_is_kept_current_by_a_sensor_schedules_and_automation():
    graph = defs.resolve_asset_graph()
    stream_checks = {k.name for k in graph.asset_check_keys if k.asset_key == dg.AssetKey("raw_transactions")}
    assert stream_checks == {"every_message_is_accounted_for", "newest_event_is_fresh", "quarantine_rate_is_low"}
    assert {s.name for s in defs.sensors} == {"stream_lag_sensor", "dbt_automation_sensor", "reporting_automation_sensor"}
    assert {s.name for s in defs.schedules} == {"forex_rates_daily"}
    assert all(s.default_status == dg.DefaultSensorStatus.RUNNING for s in defs.sensors)


def test_dagster_validates_the_code_location():
    result = subprocess.run(
        [str(Path(sys.executable).parent / "dagster"), "definitions", "validate", "-w", "workspace.yaml"],
        cwd=REPO_ROOT, capture_output=True, text=True, timeout=300,
    )
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    assert "All code locations passed validation" in result.stdout + result.stderr
