"""Incremental builds see every change a micro-batch or a forex fetch can make, and agree with a full refresh.

Also builds the marts from the real synthetic generator's history, so the
models are proven on the shapes and volumes the pipeline actually produces.
"""

from __future__ import annotations

from datetime import date, timedelta
from decimal import Decimal

import pytest
from click.testing import CliRunner

from dbt_helpers import (
    build_marts,
    charge,
    dispute,
    empty_warehouse,
    facts_by_charge,
    failed_checks,
    refund,
    rows,
    utc,
    write_rates,
)
from stream_helpers import Message, land_messages, land_objects
from txstream_dagster.cli.dbt import dbt_command
from txstream_dagster.currencies import currencies
from txstream_dagster.defs.stripe_source.object_versions import ObjectVersion
from txstream_dagster.defs.stripe_source.publisher import encode
from txstream_dagster.defs.stripe_source.synthetic_charges import SyntheticStripe

pytestmark = pytest.mark.slow

FRIDAY, SATURDAY, MONDAY = date(2024, 6, 14), date(2024, 6, 15), date(2024, 6, 17)
# What dbt computes again on every build; everything else must match exactly.
BUILD_STAMPS = {"transformed_at", "aggregated_at", "charges_transformed_at", "transformed_xid", "source_snapshot_xmin"}


def snapshot(postgres, table: str, key: str) -> dict:
    return {
        row[key]: {column: value for column, value in row.items() if column not in BUILD_STAMPS}
        for row in rows(postgres, f"SELECT * FROM {table}")
    }


def test_incremental_build_after_a_batch_and_a_forex_refetch_equals_a_full_refresh(postgres):
    empty_warehouse(postgres)
    paid_friday = charge("ch_paid_friday", 5000, "usd", utc(2024, 6, 14, 10), customer="cus_a")
    refunded_later = charge("ch_refunded_later", 8000, "usd", utc(2024, 6, 14, 11), customer="cus_b")
    waiting_for_rate = charge("ch_jpy_monday", 1000, "jpy", utc(2024, 6, 17, 9), customer="cus_a")
    write_rates(postgres, [(FRIDAY, "usd", "1.2731", FRIDAY), (FRIDAY, "jpy", "199.4837", FRIDAY)])
    land_objects(postgres, [paid_friday, refunded_later, waiting_for_rate])
    first = build_marts(postgres, full_refresh=True)
    assert first.success
    assert facts_by_charge(postgres)["ch_jpy_monday"]["fx_rate_missing"] is True

    # A micro-batch: a new weekend charge, a later version of a charge, a refund
    # and a dispute on older charges; then the forex asset fetches Monday's rates,
    # the weekend's, and corrects Friday's USD rate.
    land_objects(
        postgres,
        [
            charge("ch_eur_saturday", 2599, "eur", utc(2024, 6, 15, 18), customer="cus_c"),
            {**paid_friday, "metadata": {"order_id": "ord_42"}, "description": "edited after capture"},
            refund("re_later", refunded_later, 3000, utc(2024, 6, 18, 9)),
            dispute("dp_lost", paid_friday, 5000, utc(2024, 6, 20, 9), status="lost"),
        ],
    )
    write_rates(
        postgres,
        [
            (MONDAY, "jpy", "201.0055", MONDAY),
            (SATURDAY, "eur", "1.1842", FRIDAY),
            (FRIDAY, "usd", "1.2744", FRIDAY),
        ],
    )
    incremental = build_marts(postgres)
    assert incremental.success
    facts = facts_by_charge(postgres)
    assert len(facts) == 4
    assert facts["ch_jpy_monday"]["fx_rate_missing"] is False
    assert facts["ch_jpy_monday"]["fx_rate"] == Decimal("201.0055")
    assert facts["ch_refunded_later"]["net_amount"] == Decimal("50.00")
    assert facts["ch_refunded_later"]["fx_rate"] == Decimal("1.2744")
    assert facts["ch_paid_friday"]["disputed_amount"] == Decimal("50.00")
    assert facts["ch_eur_saturday"]["fx_rate_effective_date"] == FRIDAY
    after_incremental = {
        table: snapshot(postgres, table, key)
        for table, key in [
            ("marts.fct_transactions", "charge_id"),
            ("marts.agg_daily_revenue", "revenue_key"),
            ("marts.dim_customers", "customer_id"),
            ("marts.dim_payment_methods", "payment_method_key"),
        ]
    }

    refreshed = build_marts(postgres, full_refresh=True)
    assert refreshed.success
    for table, key in [
        ("marts.fct_transactions", "charge_id"),
        ("marts.agg_daily_revenue", "revenue_key"),
        ("marts.dim_customers", "customer_id"),
        ("marts.dim_payment_methods", "payment_method_key"),
    ]:
        assert snapshot(postgres, table, key) == after_incremental[table], table


def test_an_incremental_build_rewrites_only_the_charges_that_changed(postgres):
    empty_warehouse(postgres)
    write_rates(postgres, [(FRIDAY, "usd", "1.2731", FRIDAY)])
    land_objects(postgres, [charge(f"ch_old_{i}", 1000 + i, "usd", utc(2024, 6, 14, 10)) for i in range(50)])
    assert build_marts(postgres, full_refresh=True).success
    before = {
        r["charge_id"]: r["transformed_at"]
        for r in rows(postgres, "SELECT charge_id, transformed_at FROM marts.fct_transactions")
    }

    land_objects(postgres, [charge("ch_new", 999, "usd", utc(2024, 6, 14, 12))])
    assert build_marts(postgres).success
    after = {
        r["charge_id"]: r["transformed_at"]
        for r in rows(postgres, "SELECT charge_id, transformed_at FROM marts.fct_transactions")
    }
    rewritten = {
        charge_id for charge_id, at in after.items() if before.get(charge_id) is None or at > before[charge_id]
    }
    assert rewritten == {"ch_new"}


def test_a_transaction_that_commits_long_after_it_began_is_still_picked_up(postgres):
    # Regression: incremental models re-read 60 s before their watermark, on ingested_at, the *start* time
    # of the writing transaction: a transaction committing later than that was never picked up.
    empty_warehouse(postgres)
    write_rates(postgres, [(FRIDAY, "usd", "1.2731", FRIDAY)])
    land_objects(postgres, [charge(f"ch_{i}", 1000 + i, "usd", utc(2024, 6, 14, 10)) for i in range(5)])
    assert build_marts(postgres, full_refresh=True).success
    with postgres.connect() as slow:  # a writer whose transaction began ten minutes ago and is still open
        slow.execute(
            """INSERT INTO raw.transactions (object_id, object_type, amount, currency, status, created_at, charge_id,
                   customer_id, livemode, source, event_time, payload, kafka_topic, kafka_topic_id, kafka_partition,
                   kafka_offset, first_ingested_at, ingested_at)
               SELECT 'ch_slow', object_type, amount, currency, status, created_at, 'ch_slow', customer_id, livemode,
                      source, event_time, jsonb_set(payload, '{id}', '"ch_slow"'), kafka_topic, kafka_topic_id,
                      kafka_partition, kafka_offset + 1000, now() - interval '10 minutes', now() - interval '10 minutes'
               FROM raw.transactions WHERE object_id = 'ch_0'"""
        )
        land_objects(postgres, [charge("ch_fast", 999, "usd", utc(2024, 6, 14, 12))])
        assert build_marts(postgres).success  # reads while the slow transaction is still open
        assert {"ch_fast"} <= fact_ids(postgres) and "ch_slow" not in fact_ids(postgres)
        slow.commit()

    assert build_marts(postgres).success

    assert "ch_slow" in fact_ids(postgres)
    assert fact_ids(postgres) == {f"ch_{i}" for i in range(5)} | {"ch_fast", "ch_slow"}


def fact_ids(postgres) -> set[str]:
    return {r["charge_id"] for r in rows(postgres, "SELECT charge_id FROM marts.fct_transactions")}


def synthetic_history(days: int, charges: int) -> tuple[list[ObjectVersion], date]:
    start = utc(2024, 3, 4)
    versions = SyntheticStripe(seed=6).history(
        int(start.timestamp() * 1000), int((start + timedelta(days=days)).timestamp() * 1000), charges
    )
    return list(versions), start.date()


def land_versions(postgres, versions: list[ObjectVersion]) -> None:
    """As the synthetic source publishes them: balance transactions name the payout they were paid out in."""
    messages = [Message(m.value, m.key, m.headers) for m in (encode(v, "synthetic") for v in versions)]
    land_messages(postgres, messages)


def test_marts_built_from_the_synthetic_generators_history_reconcile(postgres):
    empty_warehouse(postgres)
    versions, first_day = synthetic_history(days=10, charges=1500)
    objects = [version.payload for version in versions]
    used = sorted({obj["currency"] for obj in objects})
    without_rates = "aed"  # any currency the history charges in
    assert without_rates in used and "gbp" in used
    # Every day from the first charge to the last follow-up, one made-up rate per currency.
    last_day = max(date.fromtimestamp(obj["created"]) for obj in objects) + timedelta(days=1)
    days = [first_day + timedelta(days=n) for n in range((last_day - first_day).days + 1)]
    write_rates(
        postgres,
        [
            (day, code, Decimal(index + 2) + Decimal(day.day) / 1000, day)
            for index, code in enumerate(used)
            if code not in (without_rates, "gbp")
            for day in days
        ],
    )
    land_versions(postgres, versions)

    result = build_marts(postgres, full_refresh=True)
    assert result.success
    assert failed_checks(result) == ["marts/fct_transactions:fx_rate_missing_charges"]
    facts = facts_by_charge(postgres)
    charge_ids = {obj["id"] for obj in objects if obj["object"] == "charge"}
    assert set(facts) == charge_ids
    assert {f["currency_code"] for f in facts.values() if f["fx_rate_missing"]} == {without_rates}
    assert all(f["currency_code"] in currencies() for f in facts.values())
    [totals] = rows(
        postgres,
        """
        SELECT (SELECT sum(net_amount_gbp) FROM marts.fct_transactions) AS facts,
               (SELECT sum(net_amount_gbp) FROM marts.agg_daily_revenue) AS aggregates""",
    )
    assert totals["facts"] == totals["aggregates"] > 0
    refunded = [f for f in facts.values() if f["refund_count"]]
    assert refunded and all(f["net_amount"] <= f["captured_amount"] for f in refunded)
    # The generator's balance: every payout pays out exactly what it covers, every fee follows its rule
    # (both checks passed above), and the fees of the daily revenue are those of the balance transactions.
    [balance] = rows(
        postgres,
        """
        SELECT (SELECT count(*) FROM marts.fct_payouts WHERE NOT is_reconciled) AS unreconciled,
               (SELECT count(*) FROM marts.fct_payouts) AS payouts,
               (SELECT sum(fee_gbp) FROM marts.fct_balance_transactions
                WHERE charge_id IN (SELECT charge_id FROM marts.fct_transactions)) AS fees,
               (SELECT sum(fee_amount_gbp) FROM marts.agg_daily_revenue) AS revenue_fees""",
    )
    assert balance["payouts"] > 0 and balance["unreconciled"] == 0
    assert balance["fees"] == balance["revenue_fees"] > 0


def production_relations(postgres) -> dict[str, int]:
    """Every relation in the schemas the dashboards read, by name → oid (dbt's rebuilds make a new one)."""
    return {
        row["name"]: row["oid"]
        for row in rows(
            postgres,
            """
        SELECT n.nspname || '.' || c.relname AS name, c.oid::bigint AS oid
        FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
        WHERE n.nspname IN ('staging', 'marts', 'monitoring') AND c.relkind IN ('r', 'v', 'm', 'p')""",
        )
    }


def test_dev_target_builds_the_same_last_week_of_charges_every_time(postgres):
    empty_warehouse(postgres)
    newest = utc(2024, 6, 30, 12)
    land_objects(postgres, [charge(f"ch_day_{n:02d}", 1000, "gbp", newest - timedelta(days=n)) for n in range(30)])

    # `txstream dbt …`: no profile of one's own, the connection comes from the warehouse URL.
    for _ in range(2):
        outcome = CliRunner().invoke(dbt_command, ["build", "--target", "dev", "--full-refresh", "--quiet"])
        assert outcome.exit_code == 0
        # within 7 days of the newest
        assert set(facts_by_charge(postgres, schema="marts_dev")) == {f"ch_day_{n:02d}" for n in range(8)}


def test_a_dev_full_refresh_leaves_the_production_marts_untouched(postgres):
    # Guards `dev` sharing the production schemas: its --full-refresh replaced marts.* with the sample.
    empty_warehouse(postgres)
    newest = utc(2024, 6, 30, 12)
    land_objects(postgres, [charge(f"ch_day_{n:02d}", 1000, "gbp", newest - timedelta(days=n)) for n in range(30)])
    assert build_marts(postgres, full_refresh=True).success
    relations = production_relations(postgres)
    facts = rows(postgres, "SELECT * FROM marts.fct_transactions ORDER BY charge_id")
    revenue = rows(postgres, "SELECT * FROM marts.agg_daily_revenue ORDER BY 1, 2")
    node_runs = rows(postgres, "SELECT * FROM ops.dbt_node_runs ORDER BY invocation_id, unique_id")
    assert len(facts) == 30 and "marts.fct_transactions" in relations

    outcome = CliRunner().invoke(dbt_command, ["build", "--target", "dev", "--full-refresh", "--quiet"])
    assert outcome.exit_code == 0

    assert production_relations(postgres) == relations  # nothing rebuilt, replaced or added
    assert rows(postgres, "SELECT * FROM marts.fct_transactions ORDER BY charge_id") == facts
    assert rows(postgres, "SELECT * FROM marts.agg_daily_revenue ORDER BY 1, 2") == revenue
    # The dashboards' model freshness is production's: a dev build records no node runs.
    assert rows(postgres, "SELECT * FROM ops.dbt_node_runs ORDER BY invocation_id, unique_id") == node_runs
    assert len(facts_by_charge(postgres, schema="marts_dev")) == 8
    built = {
        row["schema"]
        for row in rows(
            postgres,
            "SELECT DISTINCT table_schema AS schema FROM information_schema.tables WHERE table_schema LIKE '%\\_dev'",
        )
    }
    assert built == {"staging_dev", "marts_dev", "monitoring_dev"}
