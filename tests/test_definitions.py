"""The code location as a whole: it loads, and its lineage is what the design says.

The snapshot below is the asset graph: a change to the lineage shows up here in review.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import dagster as dg
import pytest
import yaml

from txstream_dagster.definitions import build_definitions
from txstream_dagster.settings import load_settings

REPO_ROOT = Path(__file__).resolve().parents[1]

LINEAGE = {
    "stripe_events_topic": [],
    "raw_transactions": ["stripe_events_topic"],
    "stripe_reconciliation": ["raw_transactions"],
    "forex_rates": [],
    "seeds/currencies": [],
    "staging/stg_stripe__charges": ["raw_transactions"],
    "staging/stg_stripe__refunds": ["raw_transactions"],
    "staging/stg_stripe__disputes": ["raw_transactions"],
    "staging/stg_stripe__balance_transactions": ["raw_transactions", "seeds/currencies"],
    "staging/stg_stripe__payouts": ["raw_transactions", "seeds/currencies"],
    "staging/stg_forex__rates": ["forex_rates"],
    "marts/dim_currencies": ["seeds/currencies"],
    "marts/dim_customers": ["staging/stg_stripe__charges"],
    "marts/dim_dates": [],
    "marts/dim_outcomes": ["staging/stg_stripe__charges"],
    "marts/dim_payment_methods": ["staging/stg_stripe__charges"],
    "marts/fct_transactions": [
        "marts/dim_currencies",
        "staging/stg_forex__rates",
        "staging/stg_stripe__charges",
        "staging/stg_stripe__disputes",
        "staging/stg_stripe__refunds",
    ],
    "marts/fct_transactions_live": [
        "marts/dim_currencies",
        "marts/fct_transactions",
        "staging/stg_forex__rates",
        "staging/stg_stripe__charges",
        "staging/stg_stripe__disputes",
        "staging/stg_stripe__refunds",
    ],
    "marts/agg_daily_revenue": [
        "marts/dim_payment_methods",
        "marts/fct_balance_transactions",
        "marts/fct_transactions",
    ],
    "marts/fct_balance_transactions": [
        "marts/dim_currencies",
        "staging/stg_forex__rates",
        "staging/stg_stripe__balance_transactions",
        "staging/stg_stripe__charges",
        "staging/stg_stripe__disputes",
        "staging/stg_stripe__payouts",
        "staging/stg_stripe__refunds",
    ],
    "marts/fct_payouts": ["marts/fct_balance_transactions", "staging/stg_forex__rates", "staging/stg_stripe__payouts"],
    "marts/fct_fx_slippage": ["marts/fct_balance_transactions", "marts/fct_transactions"],
    "marts/agg_daily_fx_slippage": ["marts/fct_fx_slippage"],
    "marts/agg_daily_balance_overview": ["marts/fct_balance_transactions"],
    "monitoring/fx_rate_missing_by_currency": ["marts/fct_transactions"],
    "monitoring/flagged_records": ["marts/dim_currencies", "raw_transactions"],
    "monitoring/pipeline_freshness": ["forex_rates", "ops/stream_batches", "raw_transactions"],
    "monitoring/stream_ingestion_per_minute": ["ops/stream_batches"],
    "monitoring/stream_lag_history": ["ops/stream_lag"],
    "monitoring/stream_lag_latest": ["ops/stream_lag"],
    "monitoring/stream_quarantine_by_reason": ["raw/quarantined_events"],
    "monitoring/stream_quarantine_per_minute": ["raw/quarantined_events"],
    "monitoring/dbt_model_freshness": ["ops/dbt_node_runs"],
    "monitoring/dagster_run_failures": ["ops/dagster_run_failures"],
    "monitoring/stripe_reconciliation": ["stripe_reconciliation"],
    "ops/dagster_run_failures": [],
    "ops/dbt_node_runs": [],
    "ops/stream_batches": [],
    "ops/stream_lag": [],
    "raw/quarantined_events": [],
    "daily_kpi_report": ["marts/agg_daily_revenue"],
}


@pytest.fixture(scope="module")
def defs() -> dg.Definitions:
    """The code location as Dagster loads it, from the test session's settings."""
    return build_definitions(load_settings())


def test_the_asset_graph_is_the_designed_lineage(defs):
    graph = defs.resolve_asset_graph()
    actual = {
        key.to_user_string(): sorted(parent.to_user_string() for parent in graph.get(key).parent_keys)
        for key in graph.get_all_asset_keys()
    }
    assert actual == LINEAGE


def test_the_stream_sink_carries_its_checks_and_is_kept_current_by_a_sensor_schedules_and_automation(defs):
    graph = defs.resolve_asset_graph()
    stream_checks = {k.name for k in graph.asset_check_keys if k.asset_key == dg.AssetKey("raw_transactions")}
    assert stream_checks == {
        "every_message_is_accounted_for",
        "newest_event_is_fresh",
        "quarantine_rate_is_low",
        "stream_is_running",
    }
    # What the continuous stream lands is checked by automation, every ten minutes (the sensor runs no check).
    for name in stream_checks - {"stream_is_running"}:
        spec = graph.get_check_spec(dg.AssetCheckKey(dg.AssetKey("raw_transactions"), name))
        assert spec.automation_condition is not None
    assert {s.name for s in defs.sensors} == {
        "stripe_ingestion_sensor",
        "stream_lag_sensor",
        "dbt_automation_sensor",
        "reporting_automation_sensor",
        "run_failure_alert_sensor",
    }
    assert {s.name for s in defs.schedules} == {
        "forex_rates_daily",
        "ops_retention_daily",
        "stripe_reconciliation_daily",
    }
    assert all(s.default_status == dg.DefaultSensorStatus.RUNNING for s in defs.sensors)


def test_raw_and_the_marts_say_how_fresh_they_are_in_the_ui(defs):
    graph = defs.resolve_asset_graph()
    late = {
        key.to_user_string(): policy.fail_window.to_timedelta().total_seconds() / 60
        for key in graph.get_all_asset_keys()
        if (policy := graph.get(key).freshness_policy) is not None
    }
    assert late["raw_transactions"] == 10
    assert late["marts/fct_transactions"] == 15
    # Every mart built from what lands; dim_dates, a calendar rebuilt only when its SQL changes, has none.
    marts = {k for k in LINEAGE if k.startswith("marts/")}
    assert {key for key in late if key.startswith("marts/")} == marts - {"marts/dim_dates"}
    assert yaml.safe_load((REPO_ROOT / "dagster.yaml").read_text())["freshness"] == {"enabled": True}


def test_dagster_validates_the_code_location():
    result = subprocess.run(
        [str(Path(sys.executable).parent / "dagster"), "definitions", "validate", "-w", "workspace.yaml"],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    assert "All code locations passed validation" in result.stdout + result.stderr


# --- where configuration comes from ----------------------------------------------------------------

PACKAGE = REPO_ROOT / "txstream_dagster"
ENVIRON_CHANGES = {"update", "pop", "setdefault", "clear", "popitem", "__setitem__", "__delitem__"}


def environ_changes(source: Path) -> list[str]:
    """Statements of `source` that change os.environ: assignments, deletions, mutating calls, os.putenv."""
    found = []
    for node in ast.walk(ast.parse(source.read_text())):
        targets = node.targets if isinstance(node, ast.Assign | ast.Delete) else []
        for target in targets:
            if isinstance(target, ast.Subscript) and ast.unparse(target.value) == "os.environ":
                found.append(f"{source.name}:{node.lineno}")
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
            owner = ast.unparse(node.func.value)
            if (owner == "os.environ" and node.func.attr in ENVIRON_CHANGES) or ast.unparse(node.func) == "os.putenv":
                found.append(f"{source.name}:{node.lineno}")
    return sorted(found, key=lambda where: int(where.rpartition(":")[2]))


def test_no_module_under_defs_changes_the_process_environment():
    # Regression: the dbt project prepended the venv to PATH at import, and the dbt resource rewrote
    # os.environ around every run; code the Dagster daemon and webserver load must not change their process.
    changes = [change for source in sorted((PACKAGE / "defs").rglob("*.py")) for change in environ_changes(source)]
    assert changes == []


def test_the_check_finds_a_change_to_the_environment(tmp_path):
    probe = tmp_path / "probe.py"
    probe.write_text("import os\nos.environ['PATH'] = 'x'\nos.environ.update(A='1')\ndel os.environ['B']\n")
    assert environ_changes(probe) == ["probe.py:2", "probe.py:3", "probe.py:4"]


def test_resources_get_their_configuration_from_their_fields_only():
    # Regression: resources called get_settings() and built the local stack inside their methods.
    resource_modules = [*(PACKAGE / "resources").glob("*.py"), *(PACKAGE / "defs").rglob("resources.py")]
    resource_modules.remove(PACKAGE / "resources" / "build.py")  # builds them: the one place that reads settings
    offenders = []
    for source in resource_modules:
        tree = ast.parse(source.read_text())
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and (
                node.module.startswith("txstream_dagster.dev")
                or any(alias.name == "load_settings" for alias in node.names)
            ):
                offenders.append(f"{source.relative_to(REPO_ROOT)} imports {node.module}")
    assert offenders == []
