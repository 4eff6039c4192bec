"""The synthetic account's balance: fees by the documented rule, Stripe's rate near the reference
rate, payouts that pay out exactly the available balance. No services."""

from __future__ import annotations

from collections import Counter, defaultdict
from datetime import UTC, date, datetime
from decimal import ROUND_HALF_UP, Decimal
from itertools import islice

import pytest

from txstream_dagster.currencies import currency
from txstream_dagster.defs.stripe_source.synthetic_balance import bundled_reference_rate
from txstream_dagster.defs.stripe_source.synthetic_charges import DAY_MS, SyntheticStripe
from txstream_dagster.defs.stripe_source.synthetic_fees import charge_fee

NOW_MS = 1_780_000_000_000  # 2026-05-28 20:26:40 UTC, a Thursday
DAYS = 45


@pytest.fixture(scope="module")
def history():
    return list(SyntheticStripe(seed=21).history(NOW_MS - DAYS * DAY_MS, NOW_MS, charges=12_000))


def latest(versions, object_type):
    objects = {}
    for version in versions:
        if version.object_type == object_type:
            objects[version.object_id] = version
    return objects


@pytest.mark.parametrize(
    ("settled_pence", "card_country", "charge_currency", "fee"),
    [
        (1_000, "GB", "gbp", 35),  # £10.00 on a UK card: 1.5% + 20p
        (1_000, "FR", "gbp", 45),  # an EEA card: 2.5% + 20p
        (1_000, "US", "gbp", 53),  # international: 3.25% = 32.5p, rounded half up, + 20p
        (1_000, "FR", "eur", 65),  # EEA card and a conversion: 4.5% + 20p
        (1_000, "JP", "jpy", 73),  # international and a conversion: 5.25% = 52.5p → 53p, + 20p
        (1, "GB", "gbp", 20),
    ],
)
def test_fees_follow_stripes_uk_pricing(settled_pence, card_country, charge_currency, fee):
    assert charge_fee(settled_pence, card_country, charge_currency) == fee


def test_every_succeeded_charge_settles_once_in_gbp_with_its_fee(history):
    charges = latest(history, "charge")
    bts = latest(history, "balance_transaction")
    by_source = defaultdict(list)
    for bt in bts.values():
        by_source[bt.payload["source"]].append(bt.payload)
    succeeded = [c.payload for c in charges.values() if c.payload["status"] == "succeeded"]
    assert len(succeeded) > 10_000
    for charge in succeeded:
        [bt] = by_source[charge["id"]]
        assert bt["id"] == charge["balance_transaction"]
        assert (bt["type"], bt["reporting_category"], bt["currency"]) == ("charge", "charge", "gbp")
        card_country = charge["payment_method_details"]["card"]["country"]
        assert bt["fee"] == charge_fee(bt["amount"], card_country, charge["currency"])
        assert bt["net"] == bt["amount"] - bt["fee"] == bt["amount"] - sum(d["amount"] for d in bt["fee_details"])
        assert bt["available_on"] > bt["created"] == charge["created"]
        if charge["currency"] == "gbp":
            assert (bt["amount"], bt["exchange_rate"]) == (charge["amount"], None)
        else:
            major = Decimal(charge["amount"]).scaleb(-currency(charge["currency"]).exponent)
            pence = (major * Decimal(repr(bt["exchange_rate"])) * 100).quantize(Decimal(1), rounding=ROUND_HALF_UP)
            assert bt["amount"] == pence
    failed = [c.payload for c in charges.values() if c.payload["status"] == "failed"]
    assert failed and not any(by_source[c["id"]] for c in failed)


def test_stripes_rate_is_the_reference_rate_less_a_small_spread(history):
    reference = bundled_reference_rate()
    charges = latest(history, "charge")
    spreads = []
    for bt in latest(history, "balance_transaction").values():
        payload = bt.payload
        if payload["type"] != "charge" or payload["exchange_rate"] is None:
            continue
        charge = charges[payload["source"]].payload
        day = datetime.fromtimestamp(payload["created"], UTC).date()
        spreads.append(1 - payload["exchange_rate"] / reference(charge["currency"], day))
    assert len(spreads) > 3_000
    assert all(0.0015 < spread < 0.0055 for spread in spreads)  # 0.35% ± 0.15%, and rounding


def test_refunds_and_lost_disputes_take_money_out(history):
    bts = [bt.payload for bt in latest(history, "balance_transaction").values()]
    refunds = latest(history, "refund")
    by_kind = Counter(bt["type"] for bt in bts)
    assert by_kind["refund"] == len(refunds) > 100
    assert all(bt["amount"] < 0 and bt["fee"] == 0 for bt in bts if bt["type"] == "refund")
    lost = [d.payload for d in latest(history, "dispute").values() if d.payload["status"] == "lost"]
    withdrawals = [bt for bt in bts if bt["reporting_category"] == "dispute"]
    assert len(withdrawals) == len(lost) > 0
    assert all(bt["amount"] < 0 and bt["fee"] == 2_000 for bt in withdrawals)
    assert {d["balance_transactions"][0]["id"] for d in lost} == {bt["id"] for bt in withdrawals}


def test_each_business_day_a_payout_pays_out_exactly_the_available_balance(history):
    bts = latest(history, "balance_transaction")
    payouts = latest(history, "payout")
    covered = defaultdict(list)
    for bt in bts.values():
        if bt.payout_id:
            covered[bt.payout_id].append(bt.payload)
    assert len(payouts) >= 30
    for payout_id, version in payouts.items():
        payout = version.payload
        created = datetime.fromtimestamp(payout["created"], UTC)
        assert created.weekday() < 5 and (created.hour, created.minute) == (0, 0)
        assert payout["amount"] == sum(bt["net"] for bt in covered[payout_id]) > 0
        assert all(bt["available_on"] <= payout["created"] and bt["status"] == "available" for bt in covered[payout_id])
        own = bts[payout["balance_transaction"]].payload
        assert (own["type"], own["amount"], own["source"]) == ("payout", -payout["amount"], payout_id)
        arrived = payout["arrival_date"] * 1000 <= NOW_MS
        assert payout["status"] == ("paid" if arrived else "in_transit")
    # Nothing paid out twice, and whatever was available before the last payout run was paid out.
    last_run = max(p.payload["created"] for p in payouts.values())
    unpaid = [bt.payload for bt in bts.values() if not bt.payout_id and bt.payload["type"] != "payout"]
    assert all(bt["available_on"] > last_run for bt in unpaid)


def test_a_stream_pays_out_within_minutes():
    ten_minutes = list(islice(SyntheticStripe(5).stream(NOW_MS, charges_per_second=20), 20 * 600 * 2))
    payouts = latest(ten_minutes, "payout")
    assert len(payouts) >= 3
    paid_out = [v for v in ten_minutes if v.payout_id]
    assert {v.payout_id for v in paid_out} <= payouts.keys()


def test_reference_rates_come_from_the_bundled_ecb_file():
    rate = bundled_reference_rate()
    assert 0.6 < rate("usd", date(2025, 6, 2)) < 0.9
    assert rate("gbp", date(2025, 6, 2)) == 1
    # Saturday carries Friday's publication forward.
    assert rate("jpy", date(2025, 5, 31)) == rate("jpy", date(2025, 5, 30))
