"""Balance transactions, fees, payouts and FX slippage in the marts, built by Dagster from real PostgreSQL.

One synthetic account (settling in GBP) is landed and built once for the module; each test
reads one figure, computed here by hand from the objects. Stripe's exchange_rate is GBP per
unit of the charge currency; txstream's rates are units per 1 GBP, so the reference value of
a USD amount in GBP is amount / rate. The tests at the end build scenarios of their own.
"""

from __future__ import annotations

from datetime import date, timedelta
from decimal import Decimal

import pytest
from psycopg import sql

from dbt_helpers import (
    balance_transaction,
    build_marts,
    charge,
    dispute,
    empty_warehouse,
    failed_checks,
    land_paid_out,
    payout,
    refund,
    rows,
    utc,
    with_card_country,
    write_rates,
)
from stream_helpers import land_objects
from txstream_dagster.db.logins import Login
from txstream_dagster.defs.stripe_source.synthetic_fees import EEA_COUNTRIES, charge_fee

pytestmark = pytest.mark.slow

FRIDAY, MONDAY, TUESDAY = date(2024, 6, 14), date(2024, 6, 17), date(2024, 6, 18)
USD_FRIDAY, EUR_FRIDAY, JPY_FRIDAY = Decimal("1.2731"), Decimal("1.1842"), Decimal("199.4837")
EXACT = Decimal("1e-15")


def synthetic_charge(charge_id: str, amount: int, currency: str, hour: int, country: str) -> dict:
    obj = charge(charge_id, amount, currency, utc(2024, 6, 14, hour), balance_transaction=f"txn_{charge_id}")
    return with_card_country(obj, country)


# --- Friday's charges, and what Stripe credited for each (fee = the synthetic rule, by hand) ----
CH_GBP = synthetic_charge("ch_gbp_uk", 10000, "gbp", 10, "GB")
BT_GBP = balance_transaction("txn_ch_gbp_uk", 10000, utc(2024, 6, 14, 10), source="ch_gbp_uk", fee=170)  # 1.5% + 20p
CH_USD = synthetic_charge("ch_usd_us", 5000, "usd", 11, "US")
# $50.00 at Stripe's 0.7812 = £39.06; 5.25% of 3906p = 205.065 → 205, + 20p.
BT_USD = balance_transaction(
    "txn_ch_usd_us", 3906, utc(2024, 6, 14, 11), source="ch_usd_us", fee=225, exchange_rate=0.7812
)
CH_EUR = synthetic_charge("ch_eur_fr", 2599, "eur", 12, "FR")
# €25.99 at 0.842 = £21.88358 → 2188p; 4.5% of 2188p = 98.46 → 98, + 20p.
BT_EUR = balance_transaction(
    "txn_ch_eur_fr", 2188, utc(2024, 6, 14, 12), source="ch_eur_fr", fee=118, exchange_rate=0.842
)
CH_JPY = synthetic_charge("ch_jpy_jp", 1000, "jpy", 13, "JP")
# ¥1000 (zero-decimal) at 0.00498 = £4.98; 5.25% of 498p = 26.145 → 26, + 20p.
BT_JPY = balance_transaction(
    "txn_ch_jpy_jp", 498, utc(2024, 6, 14, 13), source="ch_jpy_jp", fee=46, exchange_rate=0.00498
)
CH_DISPUTED = synthetic_charge("ch_gbp_disputed", 3000, "gbp", 14, "GB")
BT_DISPUTED = balance_transaction("txn_ch_gbp_disputed", 3000, utc(2024, 6, 14, 14), source="ch_gbp_disputed", fee=65)
CH_WRONG_FEE = synthetic_charge("ch_gbp_wrong_fee", 2000, "gbp", 15, "GB")
BT_WRONG_FEE = balance_transaction(  # the rule says 30p + 20p = 50p
    "txn_ch_gbp_wrong_fee", 2000, utc(2024, 6, 14, 15), source="ch_gbp_wrong_fee", fee=99
)
# Its charge never lands: kept, flagged, and reported once the grace period is over.
BT_ORPHAN = balance_transaction("txn_orphan", 1234, utc(2024, 6, 14, 16), source="ch_never_landed")

# --- Monday: a refund and a lost chargeback take money out ------------------------------------
RE_USD = refund("re_usd", CH_USD, 2000, utc(2024, 6, 17, 10))
# $20.00 at 0.779 = £15.58 out; refunds pay no fee.
BT_RE_USD = balance_transaction(
    "txn_re_usd", -1558, utc(2024, 6, 17, 10), source="re_usd", kind="refund", exchange_rate=0.779
)
DP_LOST = dispute("dp_lost", CH_DISPUTED, 3000, utc(2024, 6, 17, 9), "lost")
BT_DP_LOST = balance_transaction(
    "txn_dp_lost", -3000, utc(2024, 6, 17, 9), source="dp_lost", fee=2000, kind="adjustment", category="dispute"
)

# --- Tuesday: payouts ----------------------------------------------------------------------------
PAID_NET = 9830 + 3681 + 2070 + 452  # the net of BT_GBP, BT_USD, BT_EUR, BT_JPY
PO_PAID = payout(
    "po_paid", PAID_NET, utc(2024, 6, 18), "paid", arrival=utc(2024, 6, 19), balance_transaction="txn_po_paid"
)
BT_PO_PAID = balance_transaction("txn_po_paid", -PAID_NET, utc(2024, 6, 18), source="po_paid", kind="payout")
# Pays out £50.00 but covers only BT_DISPUTED's £29.35.
PO_SHORT = payout("po_short", 5000, utc(2024, 6, 18), "in_transit", balance_transaction="txn_po_short")
BT_PO_SHORT = balance_transaction("txn_po_short", -5000, utc(2024, 6, 18), source="po_short", kind="payout")
PO_PENDING = payout("po_pending", 100, utc(2024, 6, 18, 12), "pending")

RATES = [
    (FRIDAY, "usd", USD_FRIDAY, FRIDAY),
    (FRIDAY, "eur", EUR_FRIDAY, FRIDAY),
    (FRIDAY, "jpy", JPY_FRIDAY, FRIDAY),
    (MONDAY, "usd", "1.2699", MONDAY),
]


def backdate_landing(postgres, object_id: str, by: timedelta) -> None:
    """As if the object had landed `by` ago (the sink stamps ingested_at with the time it wrote the row)."""
    with postgres.connect(login=Login.OWNER) as conn:
        conn.execute(
            sql.SQL("UPDATE raw.transactions SET ingested_at = ingested_at - {} WHERE object_id = {}").format(
                sql.Literal(by), sql.Literal(object_id)
            )
        )


@pytest.fixture(scope="module")
def marts(postgres):
    empty_warehouse(postgres)
    write_rates(postgres, RATES)
    land_objects(
        postgres,
        [CH_GBP, CH_USD, CH_EUR, CH_JPY, CH_DISPUTED, CH_WRONG_FEE, RE_USD, DP_LOST, PO_PAID, PO_SHORT, PO_PENDING],
    )
    land_objects(postgres, [BT_WRONG_FEE, BT_ORPHAN, BT_RE_USD, BT_DP_LOST, BT_PO_PAID, BT_PO_SHORT])
    land_paid_out(postgres, "po_paid", [BT_GBP, BT_USD, BT_EUR, BT_JPY])
    land_paid_out(postgres, "po_short", [BT_DISPUTED])
    backdate_landing(postgres, "txn_orphan", timedelta(hours=2))
    return build_marts(postgres, full_refresh=True)


def by_key(postgres, table: str, key: str) -> dict:
    return {row[key]: row for row in rows(postgres, sql.SQL("SELECT * FROM marts.{}").format(sql.Identifier(table)))}


def check_rows_failed(result, check_name: str) -> int:
    [evaluation] = [e for e in result.get_asset_check_evaluations() if e.check_name == check_name]
    return evaluation.metadata["dagster_dbt/failed_row_count"].value


def test_one_odd_record_per_rule_warns_and_blocks_nothing(marts):
    assert marts.success
    assert sorted(failed_checks(marts)) == [
        "marts/fct_balance_transactions:fct_balance_transactions_every_source_object_lands_within_the_grace_period",
        "marts/fct_balance_transactions:fct_balance_transactions_fees_follow_the_rule",
        "marts/fct_payouts:fct_payouts_paid_and_in_transit_payouts_reconcile",
    ]
    assert all(e.severity.value == "WARN" for e in marts.get_asset_check_evaluations() if not e.passed)
    assert check_rows_failed(marts, "fct_balance_transactions_fees_follow_the_rule") == 1  # BT_WRONG_FEE
    assert check_rows_failed(marts, "fct_payouts_paid_and_in_transit_payouts_reconcile") == 1  # PO_SHORT


def test_balance_transaction_amounts_fees_and_net_in_the_settlement_currency_and_gbp(marts, postgres):
    usd = by_key(postgres, "fct_balance_transactions", "balance_transaction_id")["txn_ch_usd_us"]
    assert (usd["amount"], usd["fee"], usd["net"]) == (Decimal("39.06"), Decimal("2.25"), Decimal("36.81"))
    assert (usd["amount_gbp"], usd["fee_gbp"], usd["net_gbp"]) == (Decimal("39.06"), Decimal("2.25"), Decimal("36.81"))
    assert (usd["fx_rate"], usd["exchange_rate"], usd["currency_code"]) == (1, Decimal("0.7812"), "gbp")
    assert (usd["source_type"], usd["charge_id"], usd["payout_id"]) == ("charge", "ch_usd_us", "po_paid")
    assert (usd["balance_date"], usd["data_source"], usd["is_source_missing"]) == (FRIDAY, "synthetic", False)


def test_refund_and_dispute_balance_transactions_belong_to_their_charge_and_are_negative(marts, postgres):
    facts = by_key(postgres, "fct_balance_transactions", "balance_transaction_id")
    refund_bt, dispute_bt = facts["txn_re_usd"], facts["txn_dp_lost"]
    assert (refund_bt["source_type"], refund_bt["charge_id"], refund_bt["amount_gbp"]) == (
        "refund",
        "ch_usd_us",
        Decimal("-15.58"),
    )
    # A lost chargeback: £30.00 withdrawn and the £20.00 dispute fee.
    assert (dispute_bt["source_type"], dispute_bt["charge_id"]) == ("dispute", "ch_gbp_disputed")
    assert (dispute_bt["amount_gbp"], dispute_bt["fee_gbp"], dispute_bt["net_gbp"]) == (
        Decimal("-30.00"),
        Decimal("20.00"),
        Decimal("-50.00"),
    )
    assert (facts["txn_po_paid"]["source_type"], facts["txn_po_paid"]["charge_id"]) == ("payout", None)


def test_a_balance_transaction_whose_charge_never_landed_is_kept_and_flagged(marts, postgres):
    orphan = by_key(postgres, "fct_balance_transactions", "balance_transaction_id")["txn_orphan"]
    assert (orphan["is_source_missing"], orphan["charge_id"], orphan["amount_gbp"]) == (
        True,
        "ch_never_landed",
        Decimal("12.34"),
    )
    assert sum(r["is_source_missing"] for r in rows(postgres, "SELECT * FROM marts.fct_balance_transactions")) == 1


def test_a_payout_reconciles_when_the_net_it_covers_equals_its_amount(marts, postgres):
    payouts = by_key(postgres, "fct_payouts", "payout_id")
    paid = payouts["po_paid"]
    assert (paid["amount"], paid["amount_gbp"], paid["covered_net"]) == (
        Decimal("160.33"),
        Decimal("160.33"),
        Decimal("160.33"),
    )
    assert paid["covered_transaction_count"] == 4  # its own payout balance transaction is not one it covers
    assert (paid["covered_amount"], paid["covered_fee"]) == (Decimal("165.92"), Decimal("5.59"))
    assert (paid["is_reconciled"], paid["unreconciled_amount"], paid["is_upcoming"]) == (True, Decimal("0.00"), False)
    assert (paid["payout_date"], paid["arrival_date"], paid["balance_transaction_id"]) == (
        TUESDAY,
        date(2024, 6, 19),
        "txn_po_paid",
    )


def test_a_payout_that_pays_out_more_than_it_covers_does_not_reconcile(marts, postgres):
    payouts = by_key(postgres, "fct_payouts", "payout_id")
    short = payouts["po_short"]
    assert (short["covered_transaction_count"], short["covered_net"]) == (1, Decimal("29.35"))
    assert (short["is_reconciled"], short["unreconciled_amount"], short["is_upcoming"]) == (
        False,
        Decimal("20.65"),
        True,
    )
    pending = payouts["po_pending"]
    assert (pending["covered_transaction_count"], pending["covered_net"], pending["is_reconciled"]) == (
        0,
        Decimal("0"),
        False,
    )


def test_daily_revenue_gains_the_fees_of_each_days_charges_and_the_net_after_them(marts, postgres):
    revenue = {
        row["currency_code"]: row
        for row in rows(postgres, "SELECT * FROM marts.agg_daily_revenue WHERE revenue_date = %s", [FRIDAY])
    }
    usd = revenue["usd"]
    # The charge's £2.25 and its refund's £0; in USD at Friday's reference rate.
    assert usd["fee_amount_gbp"] == Decimal("2.25")
    assert usd["fee_amount"] == Decimal("2.25") * USD_FRIDAY
    assert usd["net_amount"] == Decimal("30.00")
    assert usd["net_after_fees_amount"] == Decimal("30.00") - Decimal("2.25") * USD_FRIDAY
    assert abs(usd["net_after_fees_amount_gbp"] - (Decimal("30.00") / USD_FRIDAY - Decimal("2.25"))) < EXACT
    gbp = revenue["gbp"]
    # 1.70 + 0.65 + the £20.00 dispute fee + 0.99 (the wrong fee is what Stripe charged: it counts).
    assert (gbp["fee_amount_gbp"], gbp["fee_amount"]) == (Decimal("23.34"), Decimal("23.34"))
    assert (gbp["net_amount_gbp"], gbp["net_after_fees_amount_gbp"]) == (Decimal("120.00"), Decimal("96.66"))
    assert revenue["jpy"]["fee_amount"] == Decimal("0.46") * JPY_FRIDAY
    assert all(row["unsettled_charge_count"] == 0 for row in revenue.values())


def test_daily_overview_sums_each_days_balance_activity_in_gbp(marts, postgres):
    overview = by_key(postgres, "agg_daily_balance_overview", "activity_date")
    assert sorted(overview) == [FRIDAY + timedelta(days=n) for n in range(5)]  # the weekend too, with zeros
    friday = overview[FRIDAY]
    # 100.00 + 39.06 + 21.88 + 4.98 + 30.00 + 20.00 + 12.34; fees 1.70 + 2.25 + 1.18 + 0.46 + 0.65 + 0.99.
    assert (friday["charge_count"], friday["gross_charges_gbp"], friday["fees_gbp"], friday["net_gbp"]) == (
        7,
        Decimal("228.26"),
        Decimal("7.23"),
        Decimal("221.03"),
    )
    monday = overview[MONDAY]
    assert (monday["refunds_gbp"], monday["disputes_gbp"], monday["fees_gbp"], monday["net_gbp"]) == (
        Decimal("-15.58"),
        Decimal("-30.00"),
        Decimal("20.00"),
        Decimal("-65.58"),
    )
    tuesday = overview[TUESDAY]
    assert (tuesday["payout_count"], tuesday["payouts_gbp"], tuesday["net_gbp"]) == (2, Decimal("-210.33"), 0)
    assert overview[date(2024, 6, 15)]["gross_charges_gbp"] == 0


def test_daily_overview_rolls_30_day_totals(marts, postgres):
    tuesday = by_key(postgres, "agg_daily_balance_overview", "activity_date")[TUESDAY]
    assert (
        tuesday["rolling_30d_gross_charges_gbp"],
        tuesday["rolling_30d_refunds_gbp"],
        tuesday["rolling_30d_disputes_gbp"],
        tuesday["rolling_30d_fees_gbp"],
        tuesday["rolling_30d_net_gbp"],
        tuesday["rolling_30d_payouts_gbp"],
    ) == (
        Decimal("228.26"),
        Decimal("-15.58"),
        Decimal("-30.00"),
        Decimal("27.23"),
        Decimal("155.45"),
        Decimal("-210.33"),
    )


def test_fx_slippage_compares_the_reference_value_with_what_stripe_credited(marts, postgres):
    slippage = {row["charge_id"]: row for row in rows(postgres, "SELECT * FROM marts.fct_fx_slippage")}
    assert sorted(slippage) == ["ch_eur_fr", "ch_jpy_jp", "ch_usd_us"]  # GBP charges convert nothing
    for charge_id, amount, rate, settled in [
        ("ch_usd_us", Decimal("50.00"), USD_FRIDAY, Decimal("39.06")),
        ("ch_eur_fr", Decimal("25.99"), EUR_FRIDAY, Decimal("21.88")),
        ("ch_jpy_jp", Decimal("1000"), JPY_FRIDAY, Decimal("4.98")),
    ]:
        row = slippage[charge_id]
        reference = amount / rate
        assert row["settled_amount_gbp"] == settled
        assert abs(row["reference_amount_gbp"] - reference) < EXACT
        assert abs(row["slippage_gbp"] - (reference - settled)) < EXACT
        assert abs(row["slippage_percent"] - 100 * (reference - settled) / reference) < Decimal("1e-12")
        assert abs(row["reference_exchange_rate"] - 1 / rate) < EXACT
    # $50.00 is £39.2742 at the reference rate: Stripe's conversion credited 21.42p less, 0.5454%.
    assert round(slippage["ch_usd_us"]["slippage_gbp"], 4) == Decimal("0.2142")
    assert round(slippage["ch_usd_us"]["slippage_percent"], 4) == Decimal("0.5454")


def test_daily_fx_slippage_adds_up_per_day_and_currency(marts, postgres):
    by_currency = {
        row["currency_code"]: row
        for row in rows(postgres, "SELECT * FROM marts.agg_daily_fx_slippage WHERE charge_date = %s", [FRIDAY])
    }
    assert sorted(by_currency) == ["eur", "jpy", "usd"]
    usd = by_currency["usd"]
    reference = Decimal("50.00") / USD_FRIDAY
    assert (usd["charge_count"], usd["charge_amount"], usd["settled_amount_gbp"]) == (
        1,
        Decimal("50.00"),
        Decimal("39.06"),
    )
    assert abs(usd["slippage_gbp"] - (reference - Decimal("39.06"))) < EXACT
    assert abs(usd["slippage_percent"] - 100 * (reference - Decimal("39.06")) / reference) < Decimal("1e-12")


def test_the_read_only_role_reads_the_new_marts(marts, postgres):
    with postgres.connect(login=Login.READER, autocommit=True) as conn:
        for table, expected in [
            ("fct_balance_transactions", 11),
            ("fct_payouts", 3),
            ("fct_fx_slippage", 3),
            ("agg_daily_fx_slippage", 3),
            ("agg_daily_balance_overview", 5),
        ]:
            count = conn.execute(sql.SQL("SELECT count(*) FROM marts.{}").format(sql.Identifier(table))).fetchone()
            assert count == (expected,), table


# --- scenarios of their own (they empty the warehouse: keep them last) --------------------------


def test_odd_balance_transactions_and_payouts_are_kept_flagged_and_stop_nothing(postgres):
    # What a producer may send that the stream accepts: one of each must warn or be flagged, never block.
    empty_warehouse(postgres)
    write_rates(postgres, RATES)
    at = utc(2024, 6, 14, 10)
    odd = [
        CH_GBP,
        balance_transaction("txn_odd_currency", 500, at, source="ch_gbp_uk", currency="xts"),
        balance_transaction("txn_odd_status", 500, at, source="ch_gbp_uk", status="frozen"),
        balance_transaction("txn_odd_no_source", 500, at, source=None, kind="adjustment"),
        balance_transaction("txn_odd_expanded", 500, at, source={"id": "ch_gbp_uk", "object": "charge"}),
        balance_transaction("txn_odd_net", 500, at, source="ch_gbp_uk", fee=10, net=1),
        balance_transaction("txn_odd_no_fee", 500, at, source="ch_gbp_uk", fee=None, net=None),
        balance_transaction("txn_odd_rate", 500, at, source="ch_gbp_uk", exchange_rate=99999999999.5),
        balance_transaction("txn_odd_refund_of_nothing", -500, at, source="re_never_landed", kind="refund"),
        {**payout("po_odd_currency", 500, at, "paid"), "currency": "xts"},
        payout("po_odd_status", 500, at, "stuck"),
        payout("po_never_covered", 500, at, "paid", arrival=utc(2099, 12, 31)),
    ]
    land_objects(postgres, odd)
    land_paid_out(postgres, "po_nobody_knows", [balance_transaction("txn_odd_paid_out", 700, at, source="ch_gbp_uk")])
    land_paid_out(  # in another currency than the payout's
        postgres, "po_never_covered", [balance_transaction("txn_odd_eur", 500, at, source="ch_gbp_uk", currency="eur")]
    )
    result = build_marts(postgres, full_refresh=True)

    assert result.success
    assert [e for e in result.get_asset_check_evaluations() if not e.passed and e.severity.value == "ERROR"] == []
    facts = by_key(postgres, "fct_balance_transactions", "balance_transaction_id")
    assert len(facts) == 10
    assert (facts["txn_odd_currency"]["currency_unknown"], facts["txn_odd_currency"]["amount_gbp"]) == (True, None)
    assert facts["txn_odd_status"]["status_unknown"] is True
    assert (facts["txn_odd_no_source"]["source_type"], facts["txn_odd_no_source"]["is_source_missing"]) == (
        "other",
        False,
    )
    assert (facts["txn_odd_expanded"]["source_id"], facts["txn_odd_expanded"]["charge_id"]) == (
        "ch_gbp_uk",
        "ch_gbp_uk",
    )
    assert facts["txn_odd_refund_of_nothing"]["is_source_missing"] is True
    payouts = by_key(postgres, "fct_payouts", "payout_id")
    assert not any(p["is_reconciled"] for p in payouts.values())
    assert payouts["po_never_covered"]["other_currency_transaction_count"] == 1
    assert (payouts["po_odd_status"]["status_unknown"], payouts["po_odd_currency"]["currency_unknown"]) == (True, True)
    flagged = {(r["object_id"], r["flag"]) for r in rows(postgres, "SELECT * FROM monitoring.flagged_records")}
    assert flagged == {
        ("txn_odd_currency", "currency_unknown"),
        ("txn_odd_status", "status_unknown"),
        ("po_odd_currency", "currency_unknown"),
        ("po_odd_status", "status_unknown"),
    }


def test_the_fee_macro_agrees_with_the_generators_rule_for_every_country_group(postgres):
    # Guards macros/synthetic_fee.sql drifting from synthetic_fees.py (the EEA list, a percentage).
    empty_warehouse(postgres)
    countries = ["GB", "US", None, *sorted(EEA_COUNTRIES)]
    objects: list[dict] = []
    for i, country in enumerate(countries):
        for currency in ("gbp", "usd"):
            charge_id = f"ch_rule_{i}_{currency}"
            settled = 1000 + 37 * i  # any pence; usd settles at some rate: the rule reads only the pence
            objects.append(synthetic_charge(charge_id, 2000 + i, currency, 10, country))
            objects.append(
                balance_transaction(
                    f"txn_rule_{i}_{currency}",
                    settled,
                    utc(2024, 6, 14, 10),
                    source=charge_id,
                    fee=charge_fee(settled, country, currency),
                    exchange_rate=None if currency == "gbp" else 0.79,
                )
            )
    write_rates(postgres, RATES)
    land_objects(postgres, objects)
    result = build_marts(postgres, full_refresh=True)
    assert result.success
    assert "marts/fct_balance_transactions:fct_balance_transactions_fees_follow_the_rule" not in failed_checks(result)


def test_more_wrong_fees_than_one_odd_record_block_the_marts_downstream(postgres):
    empty_warehouse(postgres)
    write_rates(postgres, RATES)
    charges = [synthetic_charge(f"ch_bad_{i}", 1000, "gbp", 10, "GB") for i in range(11)]
    wrong = [  # the rule says 15p + 20p
        balance_transaction(f"txn_bad_{i}", 1000, utc(2024, 6, 14, 10), source=f"ch_bad_{i}", fee=36) for i in range(11)
    ]
    land_objects(postgres, [*charges, *wrong])
    result = build_marts(postgres, full_refresh=True)
    assert not result.success
    [evaluation] = [
        e
        for e in result.get_asset_check_evaluations()
        if e.check_name == "fct_balance_transactions_fees_follow_the_rule"
    ]
    assert (evaluation.passed, evaluation.severity.value) == (False, "ERROR")
    materialized = {m.asset_key.to_user_string() for m in result.get_asset_materialization_events()}
    assert {"marts/fct_balance_transactions", "marts/fct_transactions"} <= materialized
    downstream = {
        "marts/fct_payouts",
        "marts/fct_fx_slippage",
        "marts/agg_daily_fx_slippage",
        "marts/agg_daily_balance_overview",
        "marts/agg_daily_revenue",
    }
    assert not downstream & materialized  # they wait for the rule to hold again


BUILD_STAMPS = {"transformed_at", "aggregated_at", "charges_transformed_at", "transformed_xid", "source_snapshot_xmin"}


def snapshot(postgres, table: str, key: str) -> dict:
    return {
        row[key]: {column: value for column, value in row.items() if column not in BUILD_STAMPS}
        for row in rows(postgres, sql.SQL("SELECT * FROM marts.{}").format(sql.Identifier(table)))
    }


def test_fees_and_sources_that_land_after_their_charges_update_every_mart_incrementally(postgres):
    empty_warehouse(postgres)
    write_rates(postgres, RATES)
    land_objects(postgres, [CH_GBP, CH_USD])
    assert build_marts(postgres, full_refresh=True).success
    [friday_gbp] = rows(
        postgres, "SELECT * FROM marts.agg_daily_revenue WHERE revenue_date = %s AND currency_code = 'gbp'", [FRIDAY]
    )
    assert (friday_gbp["fee_amount_gbp"], friday_gbp["unsettled_charge_count"]) == (0, 1)

    # The balance transactions land, the refund's before the refund itself; then the payout.
    land_objects(postgres, [BT_GBP, BT_USD, BT_RE_USD])
    assert build_marts(postgres).success
    [friday_gbp] = rows(
        postgres, "SELECT * FROM marts.agg_daily_revenue WHERE revenue_date = %s AND currency_code = 'gbp'", [FRIDAY]
    )
    assert (friday_gbp["fee_amount_gbp"], friday_gbp["net_after_fees_amount_gbp"]) == (
        Decimal("1.70"),
        Decimal("98.30"),
    )
    waiting = by_key(postgres, "fct_balance_transactions", "balance_transaction_id")["txn_re_usd"]
    assert (waiting["is_source_missing"], waiting["charge_id"]) == (True, None)

    land_objects(postgres, [RE_USD, PO_PAID, BT_PO_PAID])
    land_paid_out(postgres, "po_paid", [BT_GBP, BT_USD])
    write_rates(postgres, [(FRIDAY, "usd", "1.2744", FRIDAY)])  # a corrected reference rate
    assert build_marts(postgres).success
    resolved = by_key(postgres, "fct_balance_transactions", "balance_transaction_id")["txn_re_usd"]
    assert (resolved["is_source_missing"], resolved["charge_id"]) == (False, "ch_usd_us")
    paid = by_key(postgres, "fct_payouts", "payout_id")["po_paid"]
    assert (paid["covered_transaction_count"], paid["covered_net"]) == (2, Decimal("135.11"))
    [usd_slippage] = rows(postgres, "SELECT * FROM marts.fct_fx_slippage")
    assert abs(usd_slippage["reference_amount_gbp"] - Decimal("50.00") / Decimal("1.2744")) < EXACT

    tables = [
        ("fct_balance_transactions", "balance_transaction_id"),
        ("fct_payouts", "payout_id"),
        ("fct_fx_slippage", "balance_transaction_id"),
        ("agg_daily_fx_slippage", "slippage_key"),
        ("agg_daily_balance_overview", "activity_date"),
        ("agg_daily_revenue", "revenue_key"),
    ]
    incremental = {table: snapshot(postgres, table, key) for table, key in tables}
    assert build_marts(postgres, full_refresh=True).success
    for table, key in tables:
        assert snapshot(postgres, table, key) == incremental[table], table
