"""Daily reconciliation with the source: what Stripe holds for a day against what landed, ids named.

In synthetic mode "Stripe" is the generator's ledger behind a local Stripe-compatible API (real
HTTP, the stripe library); in real mode a local Stripe API stands in for api.stripe.com. Both
run the same asset through Dagster, including a day where events were lost on the way.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta

import dagster as dg

from stream_helpers import Message, land_messages, message_for
from stripe_helpers import FakeStripe, balance_transaction_object, payout_object, stripe_fixture
from txstream_dagster.defs.reconciliation.assets import source_api, stripe_reconciliation
from txstream_dagster.defs.reconciliation.compare import compare
from txstream_dagster.defs.reconciliation.schedules import stripe_reconciliation_daily
from txstream_dagster.defs.stripe_source.resources import StripeResource
from txstream_dagster.defs.stripe_source.stripe_api import LIST_PATHS
from txstream_dagster.defs.stripe_source.synthetic_charges import SyntheticStripe
from txstream_dagster.defs.stripe_source.synthetic_ledger import synthetic_ledger
from txstream_dagster.resources import PostgresResource

DAY = date(2026, 11, 2)


def day_ms(day: date, hour: int = 0) -> int:
    return int(datetime.combine(day, time(hour), UTC).timestamp() * 1000)


def reconcile(postgres: PostgresResource, stripe: StripeResource, day: date = DAY) -> dg.ExecuteInProcessResult:
    result = dg.materialize(
        [stripe_reconciliation],
        resources={"postgres": postgres, "stripe": stripe},
        partition_key=day.isoformat(),
        raise_on_error=False,
    )
    assert result.success  # the asset ran; its checks say whether the day reconciles
    return result


def checks(result: dg.ExecuteInProcessResult) -> dict[str, dg.AssetCheckEvaluation]:
    return {e.check_name: e for e in result.get_asset_check_evaluations()}


def stored(postgres: PostgresResource, day: date = DAY) -> dict[str, tuple]:
    rows = postgres.fetch_all(
        """SELECT object_type, stripe_count, landed_count, missing_ids, quarantined_ids, extra_ids, mismatched_ids
           FROM ops.reconciliation_results WHERE day = %s""",
        (day,),
    )
    return {row[0]: row[1:] for row in rows}


# --- pure ------------------------------------------------------------------------------------


def test_each_difference_is_named_with_its_kind():
    stripe = [
        {"id": "ch_ok", "amount": 100, "currency": "gbp"},
        {"id": "ch_lost", "amount": 200, "currency": "gbp"},
        {"id": "ch_held", "amount": 300, "currency": "eur"},
        {"id": "ch_changed", "amount": 400, "currency": "usd"},
    ]
    landed = {"ch_ok": (100, "gbp"), "ch_changed": (401, "usd"), "ch_unknown": (5, "gbp")}
    result = compare(DAY, "charge", stripe, landed, quarantined={"ch_held"})
    assert result.missing_ids == ["ch_lost"] and result.quarantined_ids == ["ch_held"]
    assert result.extra_ids == ["ch_unknown"] and result.mismatched_ids == ["ch_changed"]
    assert result.stripe_amounts == {"eur": 300, "gbp": 300, "usd": 400}
    assert result.landed_amounts == {"gbp": 105, "usd": 401}
    assert not result.complete
    assert compare(DAY, "charge", stripe[:1], {"ch_ok": (100, "gbp")}, set()).complete


def test_each_morning_yesterday_and_the_day_before_are_reconciled():
    context = dg.build_schedule_context(scheduled_execution_time=datetime(2026, 12, 3, 4, tzinfo=UTC))
    requests = stripe_reconciliation_daily(context)
    assert [r.partition_key for r in requests] == ["2026-12-02", "2026-12-01"]


# --- synthetic: the generator's ledger behind a local Stripe API ------------------------------


def test_a_day_with_lost_events_fails_naming_them_and_passes_once_they_land(clean_warehouse: PostgresResource):
    versions = list(SyntheticStripe(61).history(day_ms(DAY, 1), day_ms(DAY, 23), 120))
    with synthetic_ledger(clean_warehouse) as ledger:
        ledger.record(versions)  # what "Stripe" holds
    latest = {v.object_id: v for v in versions}
    charges = sorted(i for i, v in latest.items() if v.object_type == "charge")
    lost, quarantined = charges[:3], charges[3]
    land_messages(
        clean_warehouse,
        [
            message_for(v.payload, "synthetic", v.event_time_ms)
            for v in versions
            if v.object_id not in lost and v.object_id != quarantined
        ]
        + [Message(value=b"{not json", key=quarantined.encode())],
    )

    first = reconcile(clean_warehouse, StripeResource())

    landed = checks(first)["every_stripe_object_landed"]
    assert not landed.passed and landed.severity == dg.AssetCheckSeverity.ERROR
    assert landed.metadata["missing_ids"].value == {"charge": ", ".join(lost)}
    assert landed.metadata["quarantined_ids"].value == {"charge": quarantined}
    assert checks(first)["amounts_match_stripe"].passed and checks(first)["nothing_landed_unknown_to_stripe"].passed
    in_stripe = sum(1 for v in latest.values() if v.object_type == "charge")
    assert set(stored(clean_warehouse)) == set(LIST_PATHS)  # every object type, every day
    assert stored(clean_warehouse)["charge"] == (in_stripe, in_stripe - 4, lost, [quarantined], [], [])

    land_messages(clean_warehouse, [message_for(latest[i].payload, "synthetic", latest[i].event_time_ms) for i in lost])
    land_messages(
        clean_warehouse, [message_for(latest[quarantined].payload, "synthetic", latest[quarantined].event_time_ms)]
    )
    second = reconcile(clean_warehouse, StripeResource())

    assert all(evaluation.passed for evaluation in checks(second).values())
    assert all(not any(row[2:]) for row in stored(clean_warehouse).values())  # no id differs any more


def test_a_range_of_days_is_one_run_that_names_the_day_of_each_lost_object(clean_warehouse: PostgresResource):
    second_day = DAY + timedelta(days=1)
    versions = list(SyntheticStripe(63).history(day_ms(DAY, 1), day_ms(second_day, 23), 80))
    with synthetic_ledger(clean_warehouse) as ledger:
        ledger.record(versions)
    latest = {v.object_id: v for v in versions}
    lost = max(
        i for i, v in latest.items() if v.object_type == "charge" and v.payload["created"] >= day_ms(second_day) / 1000
    )
    land_messages(
        clean_warehouse, [message_for(v.payload, "synthetic", v.event_time_ms) for v in versions if v.object_id != lost]
    )

    result = dg.materialize(
        [stripe_reconciliation],
        resources={"postgres": clean_warehouse, "stripe": StripeResource()},
        tags={
            "dagster/asset_partition_range_start": DAY.isoformat(),
            "dagster/asset_partition_range_end": second_day.isoformat(),
        },
    )

    assert result.success and len(result.get_asset_materialization_events()) == 2  # both days, one run
    assert checks(result)["every_stripe_object_landed"].metadata["missing_ids"].value == {"charge": lost}
    assert stored(clean_warehouse, DAY)["charge"][2] == [] and stored(clean_warehouse, second_day)["charge"][2] == [
        lost
    ]


def test_the_local_stripe_api_pages_the_ledger_newest_first_like_stripe(clean_warehouse: PostgresResource):
    versions = list(SyntheticStripe(62).history(day_ms(DAY), day_ms(DAY, 20), 260))
    with synthetic_ledger(clean_warehouse) as ledger:
        ledger.record(versions)
    start = day_ms(DAY) // 1000
    with source_api(StripeResource(), clean_warehouse) as (api, source):
        charges = api.list_between(LIST_PATHS["charge"], start, start + 86_400)  # 3 pages of at most 100
        empty = api.list_between(LIST_PATHS["refund"], start - 86_400, start)
    expected = {v.object_id: v.payload for v in versions if v.object_type == "charge"}  # the latest of each
    assert source == "synthetic" and empty == []
    assert [c["id"] for c in charges] == sorted(expected, key=lambda i: (expected[i]["created"], i))
    assert {c["id"]: c for c in charges} == expected


# --- real mode: the same asset against a Stripe API ------------------------------------------


def test_against_stripe_an_amount_that_differs_and_an_object_stripe_does_not_know_are_named(
    clean_warehouse: PostgresResource,
):
    created = day_ms(DAY, 12) // 1000
    charge = {
        **stripe_fixture("charge"),
        **{"id": "ch_real_1", "amount": 1000, "currency": "gbp", "created": created},
    }
    refund = {
        **stripe_fixture("refund"),
        **{"id": "re_real_1", "charge": "ch_real_1", "amount": 250, "currency": "gbp", "created": created + 60},
    }
    refund_changed = {**refund, "amount": 300}
    stranger = {**charge, "id": "ch_not_in_stripe"}
    with FakeStripe() as fake:
        fake.add_object(charge)
        fake.add_object(refund_changed)  # Stripe holds 300; 250 landed
        landed = land_messages(clean_warehouse, [message_for(o, "stripe") for o in (charge, refund, stranger)])
        assert landed.quarantined == 0
        result = reconcile(clean_warehouse, fake.account())
        other_day = reconcile(clean_warehouse, fake.account(), DAY + timedelta(days=1))

    assert checks(result)["amounts_match_stripe"].metadata["mismatched_ids"].value == {"refund": "re_real_1"}
    unknown = checks(result)["nothing_landed_unknown_to_stripe"]
    assert not unknown.passed and unknown.severity == dg.AssetCheckSeverity.WARN
    assert unknown.metadata["unknown_ids"].value == {"charge": "ch_not_in_stripe"}
    assert checks(result)["every_stripe_object_landed"].passed
    assert all(evaluation.passed for evaluation in checks(other_day).values())


def test_against_stripe_payouts_and_balance_transactions_are_reconciled_like_charges(
    clean_warehouse: PostgresResource,
):
    created = day_ms(DAY, 9) // 1000
    payout = payout_object("po_real_1", created, 4_000)
    paid_out = balance_transaction_object("txn_payout_1", created, -4_000, source="po_real_1", kind="payout")
    charge_funds = balance_transaction_object("txn_charge_1", created - 60, 1_000, source="ch_real_1", fee=35)
    with FakeStripe() as fake:
        for obj in (payout, paid_out, charge_funds):
            fake.add_object(obj)
        landed = land_messages(clean_warehouse, [message_for(o, "stripe") for o in (payout, paid_out)])
        assert landed.quarantined == 0
        result = reconcile(clean_warehouse, fake.account())

    landed_check = checks(result)["every_stripe_object_landed"]
    assert not landed_check.passed and landed_check.metadata["missing_ids"].value == {
        "balance_transaction": "txn_charge_1"
    }
    assert checks(result)["amounts_match_stripe"].passed  # a balance transaction's amount is signed
    assert stored(clean_warehouse)["payout"] == (1, 1, [], [], [], [])
    assert stored(clean_warehouse)["balance_transaction"] == (2, 1, ["txn_charge_1"], [], [], [])


def test_synthetic_objects_are_not_compared_with_stripe_and_stripe_objects_not_with_the_ledger(
    clean_warehouse: PostgresResource,
):
    created = day_ms(DAY, 12) // 1000
    synthetic = {"id": "ch_synth", "object": "charge", "amount": 1, "currency": "gbp", "created": created}
    land_messages(clean_warehouse, [message_for(synthetic, "synthetic")])
    with FakeStripe() as fake:
        result = reconcile(clean_warehouse, fake.account())
    assert all(evaluation.passed for evaluation in checks(result).values())
