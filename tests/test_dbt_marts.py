"""The money in the marts, built by Dagster from real PostgreSQL with Stripe-shaped objects.

One scenario is landed and built once for the module; each test reads one fact
about it. Rates are units of the quote currency per 1 GBP, so amount_gbp =
amount / rate.
"""

from __future__ import annotations

import json
from datetime import date
from decimal import Decimal

import psycopg
import pytest
from click.testing import CliRunner

from dbt_helpers import (
    build_marts,
    charge,
    declined,
    dispute,
    empty_warehouse,
    facts_by_charge,
    failed_checks,
    refund,
    rows,
    utc,
    write_rates,
)
from stream_helpers import land_objects
from stripe_helpers import stripe_fixture
from txstream_dagster.cli.dbt import dbt_command
from txstream_dagster.db.logins import Login

pytestmark = pytest.mark.slow

FRIDAY, SATURDAY, SUNDAY, MONDAY = date(2024, 6, 14), date(2024, 6, 15), date(2024, 6, 16), date(2024, 6, 17)
JPY_FRIDAY, USD_FRIDAY, KWD_FRIDAY = Decimal("199.4837"), Decimal("1.2731"), Decimal("0.390412")
JPY_MONDAY, USD_MONDAY = Decimal("201.0055"), Decimal("1.2699")

JPY = charge("ch_jpy_friday", 1000, "jpy", utc(2024, 6, 14, 12), customer="cus_tokyo")
KWD = charge("ch_kwd_friday", 10000, "kwd", utc(2024, 6, 14, 9), customer="cus_kuwait")
WEEKEND = charge("ch_usd_saturday", 4200, "usd", utc(2024, 6, 15, 23, 59), customer="cus_tokyo")
GBP = charge("ch_gbp_no_rates_that_day", 2500, "gbp", utc(2024, 6, 20, 8))
NO_RATE = charge("ch_aed_no_rate", 36725, "aed", utc(2024, 6, 14, 10))
REFUNDED = charge("ch_usd_refunded", 5000, "usd", utc(2024, 6, 14, 15))
CHARGEBACK = charge("ch_usd_chargeback", 3000, "usd", utc(2024, 6, 17, 11))
INQUIRY = charge("ch_usd_inquiry", 1500, "usd", utc(2024, 6, 17, 12))
DECLINED = declined(charge("ch_usd_declined", 9900, "usd", utc(2024, 6, 17, 13)), "insufficient_funds")
VERSIONED = charge("ch_usd_versioned", 700, "usd", utc(2024, 6, 17, 14), status="pending")


@pytest.fixture(scope="module")
def marts(postgres):
    empty_warehouse(postgres)
    write_rates(
        postgres,
        [
            (FRIDAY, "jpy", JPY_FRIDAY, FRIDAY),
            (FRIDAY, "usd", USD_FRIDAY, FRIDAY),
            (FRIDAY, "kwd", KWD_FRIDAY, FRIDAY),
            # The weekend carries Friday's published rates forward.
            (SATURDAY, "jpy", JPY_FRIDAY, FRIDAY),
            (SATURDAY, "usd", USD_FRIDAY, FRIDAY),
            (SUNDAY, "jpy", JPY_FRIDAY, FRIDAY),
            (SUNDAY, "usd", USD_FRIDAY, FRIDAY),
            (MONDAY, "jpy", JPY_MONDAY, MONDAY),
            (MONDAY, "usd", USD_MONDAY, MONDAY),
            # A gbp→gbp row that is wrong on purpose: GBP must never be looked up.
            (MONDAY, "gbp", "1.5", MONDAY),
            # Rates for the day of Stripe's own example objects (2009-02-13).
            (date(2009, 2, 13), "usd", "1.4442", date(2009, 2, 13)),
        ],
    )
    land_objects(
        postgres,
        [
            JPY,
            KWD,
            WEEKEND,
            GBP,
            NO_RATE,
            REFUNDED,
            CHARGEBACK,
            INQUIRY,
            DECLINED,
            VERSIONED,
            refund("re_partial", REFUNDED, 2000, utc(2024, 6, 16, 9)),
            refund("re_failed", REFUNDED, 500, utc(2024, 6, 16, 10), status="failed"),
            dispute("dp_lost", CHARGEBACK, 3000, utc(2024, 6, 25), status="lost"),
            dispute("dp_inquiry", INQUIRY, 1500, utc(2024, 6, 25), status="warning_closed"),
            stripe_fixture("charge"),
            stripe_fixture("refund"),
            stripe_fixture("dispute"),
        ],
    )
    # A later version of one charge, in a later micro-batch: it captured.
    land_objects(
        postgres, [{**VERSIONED, "status": "succeeded", "captured": True, "paid": True, "amount_captured": 700}]
    )
    result = build_marts(postgres, full_refresh=True)
    return result, facts_by_charge(postgres)


def test_the_build_succeeds_with_every_dbt_test_run_as_a_passing_asset_check(marts):
    result, _ = marts
    assert result.success
    dbt_checks = [e for e in result.get_asset_check_evaluations() if e.check_name != "fx_rate_missing_charges"]
    assert len(dbt_checks) > 50
    assert failed_checks(result) == ["marts/fct_transactions:fx_rate_missing_charges"]  # the AED charge


def test_jpy_charge_of_1000_converts_to_exactly_1000_divided_by_the_gbp_jpy_rate(marts):
    _, facts = marts
    fact = facts["ch_jpy_friday"]
    assert fact["amount"] == Decimal("1000")  # zero-decimal: never divided by 100
    assert fact["fx_rate"] == JPY_FRIDAY
    assert abs(fact["amount_gbp"] - Decimal(1000) / JPY_FRIDAY) < Decimal("1e-15")


def test_kwd_charge_of_10000_minor_units_is_10_000_kwd(marts):
    _, facts = marts
    fact = facts["ch_kwd_friday"]
    assert str(fact["amount"]) == "10.000"
    assert abs(fact["amount_gbp"] - Decimal("10.000") / KWD_FRIDAY) < Decimal("1e-15")


def test_gbp_charge_converts_at_exactly_one_even_on_a_day_without_rates(marts):
    _, facts = marts
    fact = facts["ch_gbp_no_rates_that_day"]
    assert (fact["amount"], fact["amount_gbp"], fact["fx_rate"]) == (Decimal("25.00"), Decimal("25.00"), 1)
    assert fact["fx_rate_missing"] is False


def test_weekend_charge_uses_fridays_rate(marts):
    _, facts = marts
    fact = facts["ch_usd_saturday"]
    assert fact["charge_date"] == SATURDAY  # 23:59 UTC is still Saturday
    assert fact["fx_rate_effective_date"] == FRIDAY
    assert fact["fx_rate"] == USD_FRIDAY
    assert abs(fact["amount_gbp"] - Decimal("42.00") / USD_FRIDAY) < Decimal("1e-15")


def test_charge_in_a_currency_without_a_rate_is_flagged_and_kept_with_no_gbp_amount(marts):
    _, facts = marts
    fact = facts["ch_aed_no_rate"]
    assert fact["amount"] == Decimal("367.25")
    assert fact["fx_rate_missing"] is True
    assert (fact["fx_rate"], fact["amount_gbp"], fact["net_amount_gbp"]) == (None, None, None)
    assert sum(f["fx_rate_missing"] for f in facts.values()) == 1


def test_refunded_charge_nets_the_refunds_that_left_the_balance(marts):
    _, facts = marts
    fact = facts["ch_usd_refunded"]
    # 20.00 refunded; the failed 5.00 refund never left the balance.
    assert (fact["captured_amount"], fact["refunded_amount"], fact["net_amount"]) == (
        Decimal("50.00"),
        Decimal("20.00"),
        Decimal("30.00"),
    )
    assert fact["refund_count"] == 2
    assert abs(fact["net_amount_gbp"] - Decimal("30.00") / USD_FRIDAY) < Decimal("1e-15")
    assert abs(fact["captured_amount_gbp"] - fact["refunded_amount_gbp"] - fact["net_amount_gbp"]) < Decimal("1e-15")


def test_lost_chargeback_is_subtracted_and_a_closed_inquiry_is_not(marts):
    _, facts = marts
    assert (facts["ch_usd_chargeback"]["disputed_amount"], facts["ch_usd_chargeback"]["net_amount"]) == (
        Decimal("30.00"),
        Decimal("0.00"),
    )
    assert facts["ch_usd_chargeback"]["latest_dispute_status"] == "lost"
    assert (facts["ch_usd_inquiry"]["disputed_amount"], facts["ch_usd_inquiry"]["net_amount"]) == (
        Decimal("0.00"),
        Decimal("15.00"),
    )


def test_declined_charge_counts_no_revenue_and_names_its_decline_code(marts, postgres):
    _, facts = marts
    fact = facts["ch_usd_declined"]
    assert (fact["is_successful"], fact["captured_amount"], fact["net_amount"]) == (
        False,
        Decimal("0.00"),
        Decimal("0.00"),
    )
    [outcome] = rows(postgres, "SELECT * FROM marts.dim_outcomes WHERE outcome_key = %s", [fact["outcome_key"]])
    assert (outcome["decline_code"], outcome["failure_code"]) == ("insufficient_funds", "card_declined")


def test_fact_has_one_row_per_charge_holding_its_latest_version(marts, postgres):
    _, facts = marts
    [raw] = rows(postgres, "SELECT count(*) AS charges FROM raw.transactions WHERE object_type = 'charge'")
    assert len(facts) == raw["charges"] == 11
    assert facts["ch_usd_versioned"]["charge_status"] == "succeeded"
    assert facts["ch_usd_versioned"]["captured_amount"] == Decimal("7.00")


def test_stripes_own_example_objects_become_a_fact(marts):
    _, facts = marts
    fact = facts[stripe_fixture("charge")["id"]]
    # Stripe's example charge is authorised but not captured, its example refund is 1.00 USD
    # and its example dispute an open inquiry, which holds no funds.
    assert (fact["amount"], fact["captured_amount"], fact["refunded_amount"]) == (
        Decimal("1.00"),
        Decimal("0.00"),
        Decimal("1.00"),
    )
    assert (fact["dispute_count"], fact["latest_dispute_status"], fact["disputed_amount"]) == (
        1,
        "warning_needs_response",
        Decimal("0.00"),
    )


def test_payment_methods_are_shared_by_charges_not_one_per_charge(marts, postgres):
    _, facts = marts
    methods = rows(postgres, "SELECT * FROM marts.dim_payment_methods")
    assert len(methods) == 1 < len(facts)  # every fixture charge is a visa credit card from the US, via Link
    assert (
        methods[0]["card_brand"],
        methods[0]["card_funding"],
        methods[0]["card_country"],
        methods[0]["wallet_type"],
    ) == ("visa", "credit", "US", "link")


def test_daily_revenue_adds_up_to_the_facts(marts, postgres):
    by_day = rows(
        postgres,
        """
        SELECT revenue_date, currency_code, sum(charge_count) AS charges, sum(gross_amount) AS gross,
               sum(net_amount_gbp) AS net_gbp
        FROM marts.agg_daily_revenue GROUP BY 1, 2 ORDER BY 1, 2""",
    )
    from_facts = rows(
        postgres,
        """
        SELECT charge_date AS revenue_date, currency_code, count(*) AS charges, sum(captured_amount) AS gross,
               sum(net_amount_gbp) AS net_gbp
        FROM marts.fct_transactions GROUP BY 1, 2 ORDER BY 1, 2""",
    )
    assert by_day == from_facts
    [friday_usd] = rows(
        postgres, "SELECT * FROM marts.agg_daily_revenue WHERE revenue_date = %s AND currency_code = 'usd'", [FRIDAY]
    )
    assert friday_usd["average_ticket"] == Decimal("50.00")


def test_monitoring_shows_the_unconverted_charges_and_when_each_model_last_built(marts, postgres):
    assert [
        (r["currency_code"], r["charge_count"])
        for r in rows(postgres, "SELECT * FROM monitoring.fx_rate_missing_by_currency")
    ] == [("aed", 1)]
    freshness = {r["model_name"]: r for r in rows(postgres, "SELECT * FROM monitoring.dbt_model_freshness")}
    assert freshness["fct_transactions"]["last_status"] == "success"
    assert freshness["fct_transactions"]["last_success_at"] is not None
    assert freshness["fct_transactions"]["last_rows_affected"] == 11
    [pipeline] = rows(postgres, "SELECT * FROM monitoring.pipeline_freshness")
    assert pipeline["newest_charge_created_at"] == utc(2024, 6, 20, 8)
    assert pipeline["last_forex_rate_date"] == MONDAY


def test_dashboards_read_role_sees_marts_and_monitoring_but_not_staging_or_raw(marts, postgres):
    with postgres.connect(login=Login.READER, autocommit=True) as conn:
        assert conn.execute("SELECT count(*) FROM marts.fct_transactions").fetchone() == (11,)
        assert conn.execute("SELECT count(*) FROM marts.agg_daily_revenue").fetchone()[0] > 0
        assert conn.execute("SELECT count(*) FROM monitoring.stream_ingestion_per_minute").fetchone()[0] > 0
        for forbidden in ("staging.stg_stripe__charges", "raw.transactions", "raw.quarantined_events"):
            with pytest.raises(psycopg.errors.InsufficientPrivilege):
                conn.execute(f"SELECT 1 FROM {forbidden} LIMIT 1")


def test_dbt_docs_generate_catalogs_every_model_with_every_column_documented(marts, tmp_path):
    # `txstream dbt docs generate`, writing into tmp_path instead of the project's target/.
    outcome = CliRunner().invoke(dbt_command, ["docs", "generate", "--target-path", str(tmp_path), "--quiet"])
    assert outcome.exit_code == 0
    catalog = json.loads((tmp_path / "catalog.json").read_text())
    manifest = json.loads((tmp_path / "manifest.json").read_text())
    assert not catalog.get("errors")
    models = {uid: node for uid, node in manifest["nodes"].items() if node["resource_type"] == "model"}
    assert models and set(models) == {uid for uid in catalog["nodes"] if uid.startswith("model.")}
    assert all(catalog["nodes"][uid]["columns"] for uid in models)  # the catalog read the built relations
    undocumented = {}
    for uid, model in models.items():
        documented = {
            name.lower() for name, column in model["columns"].items() if (column.get("description") or "").strip()
        }
        missing = sorted(set(catalog["nodes"][uid]["columns"]) - documented)
        if missing:
            undocumented[model["original_file_path"]] = missing
    assert not undocumented, f"columns the database has but the models' YAML does not describe: {undocumented}"
