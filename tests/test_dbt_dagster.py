"""The dbt stage as Dagster sees it: the asset graph, checks, and when models are rebuilt.

No database needed: the graph comes from the dbt manifest, and automation is
evaluated against an ephemeral Dagster instance with reported materialisations.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import dagster as dg
import pytest
import yaml

from txstream_dagster.defs.dbt.assets import txstream_dbt_models
from txstream_dagster.defs.dbt.definitions import dbt_automation_sensor
from txstream_dagster.defs.dbt.definitions import defs as dbt_defs
from txstream_dagster.defs.dbt.project import txstream_dbt_project
from txstream_dagster.resources import build

# The graph and automation need neither dbt nor a warehouse to run: placeholders stand in for the resources.
defs = dg.Definitions.merge(
    dbt_defs, dg.Definitions(resources={key: dg.ResourceDefinition.none_resource() for key in ("dbt", "postgres")})
)

# The whole lineage, reviewed as one piece: a change here is a change to what the
# dashboards and analysts get. asset → its upstream assets.
EXPECTED_GRAPH = {
    "seeds/currencies": set(),
    "staging/stg_stripe__charges": {"raw_transactions"},
    "staging/stg_stripe__refunds": {"raw_transactions"},
    "staging/stg_stripe__disputes": {"raw_transactions"},
    "staging/stg_stripe__balance_transactions": {"raw_transactions", "seeds/currencies"},
    "staging/stg_stripe__payouts": {"raw_transactions", "seeds/currencies"},
    "staging/stg_forex__rates": {"forex_rates"},
    "marts/dim_currencies": {"seeds/currencies"},
    "marts/dim_dates": set(),
    "marts/dim_customers": {"staging/stg_stripe__charges"},
    "marts/dim_payment_methods": {"staging/stg_stripe__charges"},
    "marts/dim_outcomes": {"staging/stg_stripe__charges"},
    "marts/fct_transactions": {
        "staging/stg_stripe__charges",
        "staging/stg_stripe__refunds",
        "staging/stg_stripe__disputes",
        "staging/stg_forex__rates",
        "marts/dim_currencies",
    },
    "marts/fct_transactions_live": {
        "staging/stg_stripe__charges",
        "staging/stg_stripe__refunds",
        "staging/stg_stripe__disputes",
        "staging/stg_forex__rates",
        "marts/dim_currencies",
        "marts/fct_transactions",
    },
    "marts/agg_daily_revenue": {
        "marts/fct_transactions",
        "marts/dim_payment_methods",
        "marts/fct_balance_transactions",
    },
    "marts/fct_balance_transactions": {
        "staging/stg_stripe__balance_transactions",
        "staging/stg_stripe__charges",
        "staging/stg_stripe__refunds",
        "staging/stg_stripe__disputes",
        "staging/stg_stripe__payouts",
        "staging/stg_forex__rates",
        "marts/dim_currencies",
    },
    "marts/fct_payouts": {
        "staging/stg_stripe__payouts",
        "staging/stg_forex__rates",
        "marts/fct_balance_transactions",
    },
    "marts/fct_fx_slippage": {"marts/fct_balance_transactions", "marts/fct_transactions"},
    "marts/agg_daily_fx_slippage": {"marts/fct_fx_slippage"},
    "marts/agg_daily_balance_overview": {"marts/fct_balance_transactions"},
    "monitoring/fx_rate_missing_by_currency": {"marts/fct_transactions"},
    "monitoring/flagged_records": {"raw_transactions", "marts/dim_currencies"},
    "monitoring/dagster_run_failures": {"ops/dagster_run_failures"},
    "monitoring/stripe_reconciliation": {"stripe_reconciliation"},
    "monitoring/stream_ingestion_per_minute": {"ops/stream_batches"},
    "monitoring/stream_quarantine_by_reason": {"raw/quarantined_events"},
    "monitoring/stream_quarantine_per_minute": {"raw/quarantined_events"},
    "monitoring/stream_lag_latest": {"ops/stream_lag"},
    "monitoring/stream_lag_history": {"ops/stream_lag"},
    "monitoring/pipeline_freshness": {"raw_transactions", "forex_rates", "ops/stream_batches"},
    "monitoring/dbt_model_freshness": {"ops/dbt_node_runs"},
}
UPSTREAM = [
    "raw_transactions",
    "forex_rates",
    "ops/stream_batches",
    "ops/stream_lag",
    "ops/dbt_node_runs",
    "raw/quarantined_events",
]
REBUILT_ON_EVERY_BATCH = {
    "staging/stg_stripe__charges",
    "staging/stg_stripe__refunds",
    "staging/stg_stripe__disputes",
    "staging/stg_stripe__balance_transactions",
    "staging/stg_stripe__payouts",
    "marts/fct_balance_transactions",
    "marts/fct_payouts",
    "marts/fct_fx_slippage",
    "marts/agg_daily_fx_slippage",
    "marts/agg_daily_balance_overview",
    "marts/dim_customers",
    "marts/dim_payment_methods",
    "marts/dim_outcomes",
    "marts/fct_transactions",
    "marts/fct_transactions_live",  # the table's new watermark
    "marts/agg_daily_revenue",
    "monitoring/fx_rate_missing_by_currency",
}


def test_asset_graph_matches_the_reviewed_lineage():
    graph = defs.resolve_asset_graph()
    actual = {
        key.to_user_string(): {parent.to_user_string() for parent in graph.get(key).parent_keys}
        for key in graph.materializable_asset_keys
    }
    assert actual == EXPECTED_GRAPH


def test_models_are_grouped_by_their_folder():
    graph = defs.resolve_asset_graph()
    for key in graph.materializable_asset_keys:
        assert graph.get(key).group_name == key.path[0]


# What a landed Stripe object can legitimately fail (a currency missing from the seed, a status Stripe
# added, a refund without a status): these warn and never stop the marts; every other test blocks.
WARNING_TESTS = {
    "stg_stripe__charges_currency_code_is_in_currencies_csv",
    "stg_stripe__charges_charge_status_is_known",
    "stg_stripe__refunds_refund_status_is_set",
    "stg_stripe__refunds_refund_status_is_known",
    "stg_stripe__disputes_dispute_status_is_known",
    "dim_outcomes_charge_status_is_known",
    "fct_transactions_currency_code_is_in_dim_currencies",
    "fct_transactions_charge_status_is_known",
    "agg_daily_revenue_currency_code_is_in_dim_currencies",
    "stg_stripe__balance_transactions_currency_code_is_in_currencies_csv",
    "stg_stripe__balance_transactions_status_is_known",
    "stg_stripe__payouts_currency_code_is_in_currencies_csv",
    "stg_stripe__payouts_payout_status_is_known",
    "fct_balance_transactions_currency_code_is_in_dim_currencies",
    "fct_balance_transactions_status_is_known",
    # A balance transaction may land before its charge, refund, dispute or payout: named after an hour.
    "fct_balance_transactions_every_source_object_lands_within_the_grace_period",
    "fct_balance_transactions_net_is_amount_less_fee",
    "fct_payouts_balance_transaction_id_is_in_fct_balance_transactions",
    "fct_payouts_currency_code_is_in_dim_currencies",
    "fct_payouts_payout_status_is_known",
    "agg_daily_fx_slippage_currency_code_is_in_dim_currencies",
}
# Blocking money rules that one odd record cannot trip: they warn up to `blocking_after_failed_rows`
# failing rows (a hostile or odd object) and error above it (a broken rule, model or producer).
BLOCKING_ONLY_WHEN_SYSTEMATIC = {
    "fct_balance_transactions_fees_follow_the_rule",
    "fct_payouts_paid_and_in_transit_payouts_reconcile",
}


def test_every_dbt_test_is_an_asset_check_and_errors_block_downstream():
    manifest = json.loads(txstream_dbt_project().manifest_path.read_text())
    manifest_tests = [node for node in manifest["nodes"].values() if node["resource_type"] == "test"]
    check_specs = list(txstream_dbt_models.check_specs)
    assert len(check_specs) == len(manifest_tests) > 50
    assert {spec.name for spec in check_specs if not spec.blocking} == WARNING_TESTS
    assert {node["name"] for node in manifest_tests if node["config"]["severity"] == "warn"} == WARNING_TESTS
    checked = {spec.asset_key.to_user_string() for spec in check_specs}
    assert {"marts/fct_transactions", "marts/agg_daily_revenue", "staging/stg_stripe__charges"} <= checked
    threshold = yaml.safe_load((txstream_dbt_project().project_dir / "dbt_project.yml").read_text())["vars"][
        "blocking_after_failed_rows"
    ]
    thresholded = {
        node["name"]: (node["config"]["severity"], node["config"]["warn_if"], node["config"]["error_if"])
        for node in manifest_tests
        if node["config"]["error_if"] != "!= 0"
    }
    assert thresholded == {name: ("error", ">0", f">{threshold}") for name in BLOCKING_ONLY_WHEN_SYSTEMATIC}


def test_the_balance_marts_carry_their_money_checks():
    checks = {key.asset_key.to_user_string() + ":" + key.name for key in defs.resolve_asset_graph().asset_check_keys}
    assert {
        "marts/fct_balance_transactions:fct_balance_transactions_fees_follow_the_rule",
        "marts/fct_balance_transactions:fct_balance_transactions_every_source_object_lands_within_the_grace_period",
        "marts/fct_payouts:fct_payouts_paid_and_in_transit_payouts_reconcile",
    } <= checks


def test_fact_has_the_singular_money_tests_and_the_fx_rate_check():
    checks = {
        key.name
        for key in defs.resolve_asset_graph().asset_check_keys
        if key.asset_key == dg.AssetKey(["marts", "fct_transactions"])
    }
    assert {
        "fct_transactions_gbp_amounts_reconcile_with_raw_amounts_and_rates",
        "fct_transactions_every_charge_with_a_rate_has_a_gbp_amount",
        "fx_rate_missing_charges",
        "flagged_records",
    } <= checks


def test_dbt_runs_from_the_venv_next_to_the_interpreter_with_the_profile_of_the_transformer(isolated_settings):
    dbt = build.build_resources(isolated_settings)["dbt"]
    assert dbt.dbt_executable == str(Path(sys.executable).parent / "dbt")
    profile = yaml.safe_load((Path(dbt.profiles_dir) / "profiles.yml").read_text())
    assert profile["txstream"]["outputs"]["full"]["user"] == "txstream_transformer"


def test_the_automation_sensor_runs_by_default_and_targets_every_model_and_check():
    graph = defs.resolve_asset_graph()
    assert dbt_automation_sensor.default_status == dg.DefaultSensorStatus.RUNNING
    assert dbt_automation_sensor.asset_selection.resolve(graph) == {
        dg.AssetKey.from_user_string(key) for key in EXPECTED_GRAPH
    }
    assert dbt_automation_sensor.asset_selection.resolve_checks(graph) == set(graph.asset_check_keys)


@pytest.fixture
def automation():
    """Evaluate ticks the way the sensor does, against an instance where everything was built once."""
    with dg.DagsterInstance.ephemeral() as instance:
        graph_defs = dg.Definitions.merge(
            defs,
            dg.Definitions(assets=[dg.AssetSpec(dg.AssetKey.from_user_string(k)) for k in UPSTREAM]),
        )
        state = {"cursor": None}

        def tick() -> set[str]:
            result = dg.evaluate_automation_conditions(defs=graph_defs, instance=instance, cursor=state["cursor"])
            state["cursor"] = result.cursor
            return {
                evaluation.key.to_user_string()
                for evaluation in result.results
                if isinstance(evaluation.key, dg.AssetKey) and result.get_num_requested(evaluation.key)
            }

        def report(*keys: str) -> None:
            for key in keys:
                instance.report_runless_asset_event(dg.AssetMaterialization(dg.AssetKey.from_user_string(key)))

        yield tick, report


def built_once(automation) -> tuple:
    """Every model requested on the first tick and built; nothing pending."""
    tick, report = automation
    tick()
    report(*EXPECTED_GRAPH)
    assert tick() == set()
    return tick, report


def test_a_fresh_deployment_builds_every_model_once(automation):
    tick, report = automation
    assert tick() == set(EXPECTED_GRAPH)
    report(*EXPECTED_GRAPH)
    assert tick() == set()


def test_a_micro_batch_rebuilds_the_charge_models_and_not_the_static_ones(automation):
    tick, report = built_once(automation)
    report("raw_transactions")
    assert tick() == REBUILT_ON_EVERY_BATCH
    report(*REBUILT_ON_EVERY_BATCH)
    assert tick() == set()


def test_new_forex_rates_rebuild_the_fact_through_the_rates_view(automation):
    tick, report = built_once(automation)
    report("forex_rates")
    assert tick() == {
        "staging/stg_forex__rates",
        "marts/fct_transactions",
        "marts/fct_transactions_live",
        "marts/agg_daily_revenue",
        "monitoring/fx_rate_missing_by_currency",
        "marts/fct_balance_transactions",
        "marts/fct_payouts",
        "marts/fct_fx_slippage",
        "marts/agg_daily_fx_slippage",
        "marts/agg_daily_balance_overview",
    }
