"""The synthetic generator: Stripe's shapes, correct money, realistic behaviour, deterministic. No services."""

from __future__ import annotations

import statistics
from collections import Counter, defaultdict
from itertools import islice

import orjson
import pytest
import stripe

from stripe_helpers import shape_errors, stripe_fixture
from txstream_dagster.currencies import currency
from txstream_dagster.defs.forex.sources import load_ecb_history
from txstream_dagster.defs.stripe_source import synthetic_reference as ref
from txstream_dagster.defs.stripe_source.synthetic_charges import DAY_MS, HOUR_MS, SyntheticStripe

NOW_MS = 1_780_000_000_000  # 2026-05-28 20:26:40 UTC
DAYS = 10
UNITS_PER_USD = {market.currency: market.units_per_usd for market in ref.MARKETS}


@pytest.fixture(scope="module")
def history():
    """Ten days of a mid-size shop: 30k charges and their refunds and disputes."""
    return list(SyntheticStripe(seed=7).history(NOW_MS - DAYS * DAY_MS, NOW_MS, charges=30_000))


def latest_versions(versions, object_type):
    latest = {}
    for version in versions:
        if version.object_type == object_type:
            latest[version.object_id] = version.payload
    return latest


def first_charges(versions):
    first = {}
    for version in versions:
        if version.object_type == "charge":
            first.setdefault(version.object_id, version.payload)
    return list(first.values())


@pytest.mark.parametrize("object_type", ["charge", "refund", "dispute", "balance_transaction", "payout"])
def test_every_object_has_the_keys_and_value_types_of_stripes_own_example(history, object_type):
    example = stripe_fixture(object_type)
    objects = [v.payload for v in history if v.object_type == object_type]
    assert len(objects) > (5 if object_type == "payout" else 100)  # a payout a business day
    errors = Counter(error for obj in objects for error in shape_errors(object_type, obj, example))
    assert not errors, errors.most_common(10)


def test_objects_round_trip_through_the_stripe_library(history):
    classes = {
        "charge": stripe.Charge,
        "refund": stripe.Refund,
        "dispute": stripe.Dispute,
        "balance_transaction": stripe.BalanceTransaction,
        "payout": stripe.Payout,
    }
    for version in history[:1000]:
        obj = classes[version.object_type].construct_from(orjson.loads(orjson.dumps(version.payload)), "sk_test_x")
        assert obj.id == version.object_id
        assert obj.object == version.object_type
    charge = stripe.Charge.construct_from(history[0].payload, "sk_test_x")
    assert charge.payment_method_details.card.brand in {
        "visa",
        "mastercard",
        "amex",
        "discover",
        "jcb",
        "diners",
        "unionpay",
    }
    assert charge.outcome.type in {"authorized", "manual_review", "issuer_declined", "blocked"}


def test_every_amount_is_a_plausible_price_in_its_currencys_minor_units(history):
    """Guards against the classic bug: ¥4,980 sent as 498000 (×100) or 10.000 KWD as 1000."""
    for charge in first_charges(history):
        cur = currency(charge["currency"])
        in_usd = float(cur.to_major(charge["amount"])) / UNITS_PER_USD[cur.code]
        assert 0.45 <= in_usd <= 5_100, (charge["id"], charge["amount"], cur.code)
        if cur.exponent == 3:
            assert charge["amount"] % 10 == 0, f"Stripe requires three-decimal amounts to end in 0: {charge['amount']}"


def test_zero_and_three_decimal_currencies_are_priced_in_whole_units_and_mils(history):
    amounts = defaultdict(list)
    for charge in first_charges(history):
        amounts[charge["currency"]].append(charge["amount"])
    assert 2_000 <= statistics.median(amounts["jpy"]) <= 20_000  # yen, not hundredths of a yen
    assert 20_000 <= statistics.median(amounts["krw"]) <= 200_000
    assert 5_000 <= statistics.median(amounts["kwd"]) <= 30_000  # 5–30 KWD in fils
    assert 1_500 <= statistics.median(amounts["usd"]) <= 8_000  # $15–80 in cents


def test_many_currencies_card_brands_funding_types_and_wallets_appear(history):
    charges = first_charges(history)
    currencies = Counter(c["currency"] for c in charges)
    cards = [c["payment_method_details"]["card"] for c in charges]
    assert {"usd", "gbp", "eur", "jpy", "krw", "kwd"} <= currencies.keys()
    assert len(currencies) >= 20
    assert {"visa", "mastercard", "amex", "jcb"} <= {card["brand"] for card in cards}
    assert {"credit", "debit", "prepaid"} <= {card["funding"] for card in cards}
    assert {None, "apple_pay", "google_pay", "link"} == {card["wallet"] and card["wallet"]["type"] for card in cards}
    assert any(card["network"] == "cartes_bancaires" for card in cards)
    assert any(card["three_d_secure"] for card in cards)


def test_offline_only_the_labelled_few_currencies_lack_an_ecb_rate(history):
    """The bundled ECB file (the offline forex source) publishes every currency charged but AED and KWD."""
    ecb = load_ecb_history()
    published = set(ecb.rates[ecb.dates[-1]]) | {"eur"}
    charges = first_charges(history)
    without_rate = Counter(c["currency"] for c in charges if c["currency"] not in published)
    assert without_rate.keys() == {"aed", "kwd"}
    assert sum(without_rate.values()) / len(charges) < 0.015


def test_failed_charges_carry_stripes_decline_codes_and_a_matching_outcome(history):
    charges = first_charges(history)
    failed = [c for c in charges if c["status"] == "failed"]
    assert 0.03 <= len(failed) / len(charges) <= 0.12
    decline_codes = {d.decline_code for d in ref.DECLINES}
    for charge in failed:
        outcome = charge["outcome"]
        assert (charge["paid"], charge["captured"], charge["amount_captured"]) == (False, False, 0)
        assert charge["balance_transaction"] is None and charge["receipt_url"] is None
        assert charge["failure_code"] in {
            "card_declined",
            "expired_card",
            "incorrect_cvc",
            "processing_error",
            "incorrect_number",
        }
        assert outcome["reason"] in decline_codes
        if outcome["type"] == "blocked":
            assert outcome["network_status"] == "not_sent_to_network"
        else:
            assert (outcome["type"], outcome["network_status"]) == ("issuer_declined", "declined_by_network")
    assert {"insufficient_funds", "generic_decline", "highest_risk_level"} <= {c["outcome"]["reason"] for c in failed}
    succeeded = [c for c in charges if c["status"] == "succeeded"]
    assert all(
        c["paid"] and c["captured"] and c["amount_captured"] == c["amount"] and c["failure_code"] is None
        for c in succeeded
    )


def test_refunds_update_the_charge_and_never_exceed_it(history):
    charges = latest_versions(history, "charge")
    refunds = latest_versions(history, "refund")
    assert 0.02 <= len(refunds) / len(charges) <= 0.08
    refunded_per_charge = Counter()
    for refund in refunds.values():
        charge = charges[refund["charge"]]
        assert charge["status"] == "succeeded"
        assert (refund["currency"], refund["payment_intent"]) == (charge["currency"], charge["payment_intent"])
        refunded_per_charge[charge["id"]] += refund["amount"]
    for charge_id, refunded in refunded_per_charge.items():
        charge = charges[charge_id]
        assert charge["amount_refunded"] == refunded <= charge["amount"]
        assert charge["refunded"] == (refunded == charge["amount"])
    assert any(not charges[c]["refunded"] for c in refunded_per_charge), "some refunds are partial"


def test_disputed_charges_show_it_in_their_next_version(history):
    charges = latest_versions(history, "charge")
    disputes = latest_versions(history, "dispute")
    assert disputes
    for dispute in disputes.values():
        charge = charges[dispute["charge"]]
        assert charge["disputed"] is True
        assert (dispute["amount"], dispute["currency"]) == (charge["amount"], charge["currency"])
        assert dispute["status"] in {"needs_response", "warning_needs_response", "won", "lost", "warning_closed"}


def test_a_later_version_of_an_object_carries_a_later_event_time(history):
    event_times = defaultdict(list)
    for version in history:
        event_times[version.object_id].append(version.event_time_ms)
    updated = [times for times in event_times.values() if len(times) > 1]
    assert len(updated) > 500
    assert all(a < b for times in updated for a, b in zip(times, times[1:], strict=False))
    assert [v.event_time_ms for v in history] == sorted(v.event_time_ms for v in history)


def test_history_stays_in_its_window_and_follows_a_daily_cycle(history):
    assert all(NOW_MS - DAYS * DAY_MS <= v.event_time_ms < NOW_MS for v in history)
    per_day = Counter(
        (v.event_time_ms - (NOW_MS - DAYS * DAY_MS)) // DAY_MS for v in history if v.object_type == "charge"
    )
    assert len(per_day) == DAYS and min(per_day.values()) > 0.7 * max(per_day.values())
    # In the shopper's own time zone: evenings are busy, 4 am is quiet.
    offsets = {m.country: m.utc_offset_hours * HOUR_MS for m in ref.MARKETS}
    local_hours = Counter(
        int((c["created"] * 1000 + offsets[c["billing_details"]["address"]["country"]]) // HOUR_MS) % 24
        for c in first_charges(history)
    )
    assert local_hours[19] > 4 * local_hours[4]


def test_customers_come_back(history):
    charges = first_charges(history)
    by_customer = Counter(c["customer"] for c in charges if c["customer"])
    guests = sum(1 for c in charges if c["customer"] is None)
    repeat_charges = sum(n for n in by_customer.values() if n > 1)
    assert 0.10 <= guests / len(charges) <= 0.20
    assert repeat_charges / len(charges) > 0.4
    assert by_customer.most_common(1)[0][1] >= 10


def test_the_same_seed_gives_the_same_objects_byte_for_byte():
    def run(seed):
        generator = SyntheticStripe(seed)
        return [orjson.dumps(list(v)) for v in generator.history(NOW_MS - DAY_MS, NOW_MS, 2_000)] + [
            orjson.dumps(list(v)) for v in islice(generator.stream(NOW_MS, 500), 2_000)
        ]

    assert run(11) == run(11)
    assert run(11) != run(12)


def test_a_stream_starts_at_its_anchor_and_advances_at_its_rate():
    versions = [
        v
        for v in islice(SyntheticStripe(3).stream(NOW_MS, charges_per_second=1_000), 20_000)
        if v.object_type == "charge"
    ][:10_000]
    first, last = versions[0].event_time_ms, versions[-1].event_time_ms
    assert NOW_MS <= first < NOW_MS + 100
    assert 8_000 <= last - NOW_MS <= 12_000  # ~10 s of charges at 1,000/s
    assert all(
        abs(v.payload["created"] * 1000 - v.event_time_ms) < 1000
        for v in versions
        if v.object_type == "charge" and not v.payload["amount_refunded"] and not v.payload["disputed"]
    )


def test_a_stream_brings_refunds_within_minutes():
    ten_minutes = list(islice(SyntheticStripe(5).stream(NOW_MS, charges_per_second=50), 50 * 600))
    assert Counter(v.object_type for v in ten_minutes)["refund"] > 30
