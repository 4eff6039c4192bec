"""The synthetic account's balance: balance transactions and automatic daily payouts.

A UK account settling in GBP, as Stripe runs one:

- every succeeded charge adds a balance transaction (type `charge`): its amount converted
  to GBP at Stripe's rate, less the fee of synthetic_fees, available a few business days later;
- every refund takes its amount out again at the day's rate (type `refund`, no fee);
- every lost dispute takes the charge's amount out, plus the £20 dispute fee (type `adjustment`,
  reporting category `dispute`);
- every business day an automatic payout sends exactly the available balance to the bank: the
  payout takes it out of the balance (its own balance transaction, type `payout`), and every
  balance transaction it pays out is published again, now `available`, under the payout
  (ObjectVersion.payout_id: what `GET /v1/balance_transactions?payout=` would list).
  A balance that is not positive waits for the next day.

Stripe's rate is the reference rate of the day (the ECB's, as txstream's forex assets
publish it) less a small spread, so the difference between the two (FX slippage) is
what the marts measure. Objects have the key set of Stripe's own examples
(tests/fixtures/stripe/balance_transaction.json and payout.json).
"""

from __future__ import annotations

import functools
import random
from collections.abc import Callable, Iterator
from datetime import UTC, date, datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

from txstream_dagster.currencies import currency
from txstream_dagster.defs.stripe_source import synthetic_fees as fees
from txstream_dagster.defs.stripe_source.object_versions import ObjectVersion

DAY_MS = 86_400_000
# Funds from a charge become available this many business days after it (Stripe UK: 3 on a new
# account; established accounts are often faster).
AVAILABLE_AFTER_BUSINESS_DAYS = 3
# An automatic payout arrives in the bank the next business day.
ARRIVAL_AFTER_BUSINESS_DAYS = 1
BANK_ACCOUNT = "ba_1TxStrEam42GBbankAcct0"
# Stripe quotes exchange rates to about six significant digits (0.789452, 0.00531862).
EXCHANGE_RATE_DIGITS = 6

# (currency, day) → GBP for one unit of the currency at the reference rate.
ReferenceRate = Callable[[str, date], float]


def business_days_after(day: date, count: int) -> date:
    while count:
        day += timedelta(days=1)
        if day.weekday() < 5:
            count -= 1
    return day


def epoch_day(t_ms: int) -> date:
    return datetime.fromtimestamp(t_ms / 1000, tz=UTC).date()


def day_start_ms(day: date) -> int:
    return int(datetime(day.year, day.month, day.day, tzinfo=UTC).timestamp()) * 1000


class Clock:
    """When funds become available and when payouts run: business days for history; for the stream,
    the same delays compressed by `scale` (a demo sees a 'day' of payouts in a minute or two)."""

    def __init__(self, scale: float):
        self.scale = scale

    @property
    def compressed(self) -> bool:
        return self.scale < 1.0

    def available_ms(self, t_ms: int) -> int:
        if self.compressed:
            return t_ms + int(AVAILABLE_AFTER_BUSINESS_DAYS * DAY_MS * self.scale)
        return day_start_ms(business_days_after(epoch_day(t_ms), AVAILABLE_AFTER_BUSINESS_DAYS))

    def arrival_ms(self, t_ms: int) -> int:
        if self.compressed:
            return t_ms + int(ARRIVAL_AFTER_BUSINESS_DAYS * DAY_MS * self.scale)
        return day_start_ms(business_days_after(epoch_day(t_ms), ARRIVAL_AFTER_BUSINESS_DAYS))

    def next_payout_ms(self, after_ms: int) -> int:
        """The first payout run after `after_ms`: midnight UTC of the next business day, or one
        compressed day later."""
        if self.compressed:
            return after_ms + max(int(DAY_MS * self.scale), 1)
        return day_start_ms(business_days_after(epoch_day(after_ms), 1))


class SyntheticBalance:
    """Balance transactions and payouts for the objects of one SyntheticStripe; see the module docstring."""

    def __init__(self, rng: random.Random, reference_rate: ReferenceRate, new_id: Callable[[str], str]):
        self.rng = rng
        self.reference_rate = reference_rate
        self.new_id = new_id
        self.unpaid: list[tuple[int, dict[str, Any]]] = []  # (available at ms, balance transaction)

    # --- what adds to or takes from the balance ---------------------------------------
    def for_charge(self, t_ms: int, charge: dict[str, Any], clock: Clock) -> ObjectVersion:
        settled, rate = self._settle(charge["amount"], charge["currency"], t_ms)
        card = charge["payment_method_details"]["card"]
        fee = fees.charge_fee(settled, card["country"], charge["currency"])
        return self._add(
            t_ms,
            clock,
            charge["balance_transaction"],
            settled,
            rate,
            fee,
            "Stripe processing fees",
            source=charge["id"],
            kind="charge",
            category="charge",
            description=charge["description"],
        )

    def for_refund(self, t_ms: int, refund: dict[str, Any], clock: Clock) -> ObjectVersion:
        settled, rate = self._settle(refund["amount"], refund["currency"], t_ms)
        return self._add(
            t_ms, clock, refund["balance_transaction"], -settled, rate, 0, None, refund["id"], "refund", "refund", None
        )

    def for_lost_dispute(self, t_ms: int, dispute: dict[str, Any], clock: Clock) -> ObjectVersion:
        settled, rate = self._settle(dispute["amount"], dispute["currency"], t_ms)
        return self._add(
            t_ms,
            clock,
            self.new_id("txn"),
            -settled,
            rate,
            fees.DISPUTE_FEE_PENCE,
            "Dispute fee",
            source=dispute["id"],
            kind="adjustment",
            category="dispute",
            description=f"Chargeback withdrawal for {dispute['charge']}",
        )

    # --- the automatic payout --------------------------------------------------------
    def payout(self, t_ms: int, clock: Clock) -> Iterator[tuple[int, ObjectVersion]]:
        """The payout run at t_ms: (event ms, version) of the payout, its balance transaction and every
        balance transaction it pays out; nothing when the available balance is not positive."""
        due = [(at, bt) for at, bt in self.unpaid if at <= t_ms]
        amount = sum(bt["net"] for _, bt in due)
        if not due or amount <= 0:
            return
        self.unpaid = [(at, bt) for at, bt in self.unpaid if at > t_ms]
        created = t_ms // 1000
        payout_id, payout_bt_id = self.new_id("po"), self.new_id("txn")
        arrival_ms = clock.arrival_ms(t_ms)
        payout = {
            "amount": amount,
            "application_fee": None,
            "application_fee_amount": None,
            "arrival_date": arrival_ms // 1000,
            "automatic": True,
            "balance_transaction": payout_bt_id,
            "created": created,
            "currency": fees.SETTLEMENT_CURRENCY,
            "description": "STRIPE PAYOUT",
            "destination": BANK_ACCOUNT,
            "failure_balance_transaction": None,
            "failure_code": None,
            "failure_message": None,
            "id": payout_id,
            "livemode": False,
            "metadata": {},
            "method": "standard",
            "object": "payout",
            "original_payout": None,
            "payout_method": None,
            "reconciliation_status": "in_progress",
            "reversed_by": None,
            "source_type": "card",
            "statement_descriptor": None,
            "status": "in_transit",
            "trace_id": {"status": "pending", "value": None},
            "type": "bank_account",
        }
        yield t_ms, ObjectVersion("payout", payout_id, t_ms, payout)
        payout_bt = self._balance_transaction(
            payout_bt_id, created, created, -amount, None, 0, None, payout_id, "payout", "payout", "STRIPE PAYOUT"
        )
        payout_bt["status"] = "available"
        yield t_ms, ObjectVersion("balance_transaction", payout_bt_id, t_ms, payout_bt)
        for _, bt in due:
            paid_out = {**bt, "status": "available"}
            yield t_ms, ObjectVersion("balance_transaction", bt["id"], t_ms, paid_out, payout_id=payout_id)
        paid = {
            **payout,
            "status": "paid",
            "reconciliation_status": "completed",
            "trace_id": {"status": "supported", "value": f"TRACE{payout_id[-12:].upper()}"},
        }
        yield arrival_ms, ObjectVersion("payout", payout_id, max(arrival_ms, t_ms + 1), paid)

    # --- the parts -------------------------------------------------------------------
    def _settle(self, amount: int, code: str, t_ms: int) -> tuple[int, float | None]:
        """`amount` minor units of `code` → (GBP pence credited, Stripe's exchange rate or None)."""
        if code == fees.SETTLEMENT_CURRENCY:
            return amount, None
        spread = fees.SPREAD + self.rng.uniform(-fees.SPREAD_JITTER, fees.SPREAD_JITTER)
        rate = float(f"{self.reference_rate(code, epoch_day(t_ms)) * (1 - spread):.{EXCHANGE_RATE_DIGITS}g}")
        major = Decimal(amount).scaleb(-currency(code).exponent)
        pence = (major * Decimal(repr(rate)) * 100).quantize(Decimal(1), rounding=ROUND_HALF_UP)
        return int(pence), rate

    def _add(
        self,
        t_ms: int,
        clock: Clock,
        bt_id: str,
        amount: int,
        rate: float | None,
        fee: int,
        fee_description: str | None,
        source: str,
        kind: str,
        category: str,
        description: str | None,
    ) -> ObjectVersion:
        available_ms = clock.available_ms(t_ms)
        bt = self._balance_transaction(
            bt_id,
            t_ms // 1000,
            available_ms // 1000,
            amount,
            rate,
            fee,
            fee_description,
            source,
            kind,
            category,
            description,
        )
        self.unpaid.append((available_ms, bt))
        return ObjectVersion("balance_transaction", bt_id, t_ms, bt)

    @staticmethod
    def _balance_transaction(
        bt_id: str,
        created: int,
        available_on: int,
        amount: int,
        rate: float | None,
        fee: int,
        fee_description: str | None,
        source: str,
        kind: str,
        category: str,
        description: str | None,
    ) -> dict[str, Any]:
        fee_details = (
            [
                {
                    "amount": fee,
                    "application": None,
                    "currency": fees.SETTLEMENT_CURRENCY,
                    "description": fee_description,
                    "type": "stripe_fee",
                }
            ]
            if fee
            else []
        )
        return {
            "amount": amount,
            "available_on": available_on,
            "balance_type": "payments",
            "created": created,
            "currency": fees.SETTLEMENT_CURRENCY,
            "description": description,
            "exchange_rate": rate,
            "fee": fee,
            "fee_details": fee_details,
            "id": bt_id,
            "net": amount - fee,
            "object": "balance_transaction",
            "reporting_category": category,
            "source": source,
            "status": "pending",
            "type": kind,
        }


# --- the reference rates ----------------------------------------------------------------


@functools.cache
def bundled_reference_rate() -> ReferenceRate:
    """GBP per unit from the ECB file bundled with txstream's offline forex source, carried forward
    over days without publication (and past the file's end); a currency the ECB does not publish
    falls back to the synthetic markets' price levels."""
    from txstream_dagster.defs.forex.rates import cross_rates
    from txstream_dagster.defs.forex.sources import load_ecb_history
    from txstream_dagster.defs.stripe_source.synthetic_reference import MARKETS

    history = load_ecb_history()
    gbp_per_usd_level = next(m.units_per_usd for m in MARKETS if m.currency == fees.SETTLEMENT_CURRENCY)
    fallback = {m.currency: gbp_per_usd_level / m.units_per_usd for m in MARKETS}

    @functools.cache
    def per_gbp(day: date) -> dict[str, Decimal]:
        published = history.latest_on_or_before(day) or history.dates[0]
        return cross_rates(dict(history.rates[published]), fees.SETTLEMENT_CURRENCY)

    def rate(code: str, day: date) -> float:
        units = per_gbp(day).get(code)
        return 1 / float(units) if units else fallback[code]

    return rate
