"""Synthetic Stripe objects: full Charge, Refund and Dispute versions, with the account's balance
transactions and payouts (synthetic_balance), seeded and fast.

Pure: no clock, no I/O but reading the bundled reference rates once. The same seed and the
same time anchor give the same objects, byte for byte. Two shapes of output:

- `history(start_ms, end_ms, charges)`: charges spread over a window with a daily
  cycle in each customer's local time, then their refunds and disputes, as far as
  they had happened by `end_ms`;
- `stream(start_ms, charges_per_second)`: an endless stream from `start_ms`, with
  refunds and disputes compressed from days to minutes so a demo sees them.

Each yields `ObjectVersion`s in event-time order. A refund or dispute yields the
new object *and* the charge's next version (amount_refunded, refunded, disputed),
so the warehouse sees what Stripe would show. Objects follow the key set and
types of Stripe's own example charge (tests/fixtures/stripe/charge.json).
"""

from __future__ import annotations

import base64
import functools
import heapq
import random
import time
import unicodedata
from bisect import bisect
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from itertools import accumulate
from typing import Any, Generic, TypeVar

from txstream_dagster.currencies import Currency, currency
from txstream_dagster.defs.stripe_source import synthetic_reference as ref
from txstream_dagster.defs.stripe_source.object_versions import ObjectVersion
from txstream_dagster.defs.stripe_source.synthetic_balance import (
    Clock,
    ReferenceRate,
    SyntheticBalance,
    bundled_reference_rate,
)

T = TypeVar("T")

# Stripe ids embed a fragment of the account id; ours names the synthetic account.
ACCOUNT_FRAGMENT = "TxStrEam42"
# The population is shared by every run (whatever its seed), so customers repeat across runs.
POPULATION_SEED = 20_240_601
POPULATION_SIZE = 20_000
SHARE_GUEST_CHECKOUTS = 0.15
# Basket value in US dollars: log-normal around $38, clipped to Stripe's $0.50 minimum.
BASKET_MEDIAN_USD = 38.0
BASKET_SIGMA = 0.95
MIN_CHARGE_USD = 0.50
MAX_CHARGE_USD = 5_000.0

DAY_MS = 86_400_000
HOUR_MS = 3_600_000
# How long after a payment its follow-ups happen (log-normal medians and floors).
REFUND_DELAY_MEDIAN_MS = 2 * DAY_MS
REFUND_DELAY_MIN_MS = 10 * 60_000
DISPUTE_DELAY_MEDIAN_MS = 3 * DAY_MS
DISPUTE_DELAY_MIN_MS = DAY_MS
DISPUTE_CLOSE_MEDIAN_MS = 21 * DAY_MS
# In a live stream a day of follow-ups happens in 86 s: refunds arrive within minutes.
STREAM_FOLLOW_UP_COMPRESSION = 1_000

_B64_TO_ALNUM = bytes.maketrans(b"+/", b"aZ")


class Weighted(Generic[T]):
    """A weighted choice drawn with one random number (bisect on cumulative weights)."""

    def __init__(self, pairs: Sequence[tuple[T, float]]):
        self.items = [item for item, _ in pairs]
        self.cumulative = list(accumulate(weight for _, weight in pairs))
        self.total = self.cumulative[-1]

    def pick(self, rng: random.Random) -> T:
        return self.items[bisect(self.cumulative, rng.random() * self.total)]


def random_token(rng: random.Random, length: int) -> str:
    """`length` characters of [A-Za-z0-9], like the random part of a Stripe id."""
    raw = base64.b64encode(rng.randbytes((length * 3 + 3) // 4)).translate(_B64_TO_ALNUM)
    return raw[:length].decode()


def stripe_id(rng: random.Random, prefix: str) -> str:
    """`ch_3Q…` style: 24 characters after the prefix, with the account fragment in the middle."""
    token = random_token(rng, 13)
    return f"{prefix}_3{token[:5]}{ACCOUNT_FRAGMENT}{token[5:]}"


def digits(rng: random.Random, count: int) -> str:
    return str(int(rng.random() * 10**count)).zfill(count)


def fill_template(rng: random.Random, template: str) -> str:
    return "".join(
        str(rng.randrange(10)) if ch == "#" else chr(65 + rng.randrange(26)) if ch == "A" else ch for ch in template
    )


def ascii_slug(text: str) -> str:
    folded = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode()
    return "".join(ch for ch in folded.lower().replace(" ", ".") if ch.isalnum() or ch in ".-")


# --- money -------------------------------------------------------------------


def charge_amount(rng: random.Random, cur: Currency, units_per_usd: float) -> int:
    """A shop price in `cur`'s minor units, rounded the way shops price in that currency.

    Zero-decimal currencies (JPY, KRW) get whole units; three-decimal ones (KWD, BHD)
    end in 0, as Stripe requires for card payments in them.
    """
    usd = min(max(rng.lognormvariate(0.0, BASKET_SIGMA) * BASKET_MEDIAN_USD, MIN_CHARGE_USD), MAX_CHARGE_USD)
    major = usd * units_per_usd
    minimum = minimum_amount(cur, MIN_CHARGE_USD * units_per_usd)
    if cur.exponent == 2:
        cents = round(major * 100)
        style = rng.random()
        if style < 0.4:
            cents = max(cents // 100, 1) * 100 - 1  # 19.99
        elif style < 0.7:
            cents = max(round(cents / 100), 1) * 100  # 20.00
        return max(cents, minimum)
    if cur.exponent == 0:
        step = 10 if major < 10_000 else 100  # ¥4,980, ₩54,000
        return max(round(major / step) * step, minimum)
    step = 10 ** (cur.exponent - 1) * (50 if rng.random() < 0.5 else 1)  # 12.500 / 12.340 KWD
    return max(round(major * 10**cur.exponent / step) * step, minimum)


def minimum_amount(cur: Currency, major: float) -> int:
    """The smallest amount at or above `major` units that Stripe accepts in `cur`, in minor units."""
    minor = int(major * 10**cur.exponent) + 1
    if cur.exponent >= 3:
        minor = -(-minor // 10) * 10
    return minor


def partial_amount(rng: random.Random, cur: Currency, amount: int) -> int:
    """A part of `amount` (10–90 %) that Stripe would accept in `cur`."""
    step = 10 if cur.exponent >= 3 else 1
    part = round(amount * rng.uniform(0.1, 0.9) / step) * step
    return min(max(part, step), amount)


# --- the customer population ---------------------------------------------------


@dataclass(frozen=True, slots=True)
class Card:
    payment_method: str
    brand: str
    network: str
    country: str
    funding: str
    last4: str
    fingerprint: str
    exp_month: int
    years_to_expiry: int


@dataclass(frozen=True, slots=True)
class Customer:
    id: str | None  # None: a guest checkout
    market: ref.Market
    currency: Currency
    units_per_usd: float
    name: str
    email: str
    city: str
    state: str | None
    postal_code: str | None
    line1: str | None
    cards: tuple[Card, ...]


class CustomerFactory:
    """Builds customers and their cards; shared by the stable population and guest checkouts."""

    def __init__(self):
        self.markets = Weighted([(market, market.weight) for market in ref.MARKETS])
        self.brands = {country: Weighted(pairs) for country, pairs in ref.CARD_BRANDS.items()}
        self.funding = Weighted(ref.CARD_FUNDING)
        self.currencies = {market.currency: currency(market.currency) for market in ref.MARKETS}
        self.usd = currency("usd")

    def customer(self, rng: random.Random, market: ref.Market, customer_id: str | None) -> Customer:
        first_names, last_names = ref.NAME_POOLS[market.names]
        name = f"{rng.choice(first_names)} {rng.choice(last_names)}"
        city, state = rng.choice(market.cities)
        charged_in_usd = market.currency != "usd" and rng.random() < ref.SHARE_CHARGED_IN_USD_ABROAD
        cards = tuple(self.card(rng, market) for _ in range(1 if rng.random() < 0.8 else 2))
        return Customer(
            id=customer_id,
            market=market,
            currency=self.usd if charged_in_usd else self.currencies[market.currency],
            units_per_usd=1.0 if charged_in_usd else market.units_per_usd,
            name=name,
            email=f"{ascii_slug(name)}{rng.randrange(100)}@{rng.choice(ref.EMAIL_DOMAINS)}",
            city=city,
            state=state,
            postal_code=fill_template(rng, market.postal_code) if market.postal_code else None,
            line1=f"{rng.randrange(1, 200)} {rng.choice(ref.STREETS)}" if rng.random() < 0.6 else None,
            cards=cards,
        )

    def card(self, rng: random.Random, market: ref.Market) -> Card:
        issued_in = self.markets.pick(rng).country if rng.random() < ref.SHARE_CARD_ISSUED_ABROAD else market.country
        brand = self.brands.get(issued_in, self.brands["default"]).pick(rng)
        network = brand
        if (
            issued_in == "FR"
            and brand in ("visa", "mastercard")
            and rng.random() < ref.SHARE_ROUTED_VIA_CARTES_BANCAIRES
        ):
            network = "cartes_bancaires"
        return Card(
            payment_method=f"pm_1{random_token(rng, 23)}",
            brand=brand,
            network=network,
            country=issued_in,
            funding=self.funding.pick(rng),
            last4=digits(rng, 4),
            fingerprint=random_token(rng, 16),
            exp_month=rng.randint(1, 12),
            years_to_expiry=rng.randint(1, 6),
        )


@functools.cache
def build_population(seed: int, size: int) -> tuple[tuple[Customer, ...], tuple[float, ...]]:
    """Customers and their cumulative purchase weights: a heavy tail of loyal repeat buyers.

    Immutable and cached: every generator in the process shares one population.
    """
    rng = random.Random(seed)
    factory = CustomerFactory()
    customers = [factory.customer(rng, factory.markets.pick(rng), f"cus_{random_token(rng, 14)}") for _ in range(size)]
    cumulative = tuple(accumulate(rng.paretovariate(1.3) for _ in range(size)))
    return tuple(customers), cumulative


# --- the generator ---------------------------------------------------------------


class _ChargeHistory:
    """The latest version of a charge with follow-ups still to come."""

    __slots__ = ("latest", "last_event_ms", "card_brand")

    def __init__(self, latest: dict[str, Any], last_event_ms: int, card_brand: str):
        self.latest = latest
        self.last_event_ms = last_event_ms
        self.card_brand = card_brand

    def next_version(self, event_ms: int, **changes: Any) -> tuple[int, dict[str, Any]]:
        # Never mutate a version already handed out: the publisher may not have serialised it yet.
        self.latest = {**self.latest, **changes}
        self.last_event_ms = max(event_ms, self.last_event_ms + 1)
        return self.last_event_ms, self.latest


class SyntheticStripe:
    """A seeded source of Stripe objects; see the module docstring."""

    def __init__(
        self,
        seed: int,
        *,
        population_seed: int = POPULATION_SEED,
        population_size: int = POPULATION_SIZE,
        reference_rate: ReferenceRate | None = None,
    ):
        self.seed = seed
        self.rng = random.Random(seed)
        self.balance = SyntheticBalance(
            self.rng, reference_rate or bundled_reference_rate(), lambda prefix: stripe_id(self.rng, prefix)
        )
        self.clock = Clock(1.0)
        self.factory = CustomerFactory()
        self.customers, self.customer_weights = build_population(population_seed, population_size)
        self.customer_total = self.customer_weights[-1]
        self.wallets = Weighted(ref.WALLETS)
        self.declines = Weighted([(decline, decline.weight) for decline in ref.DECLINES])
        self.dispute_reasons = Weighted([(reason, weight) for reason, weight, _ in ref.DISPUTE_REASONS])
        self.dispute_codes = {reason: codes for reason, _, codes in ref.DISPUTE_REASONS}
        self.refund_reasons = Weighted(ref.REFUND_REASONS)
        self._seq = 0

    # --- the two shapes of output ---------------------------------------------
    def history(self, start_ms: int, end_ms: int, charges: int) -> Iterator[ObjectVersion]:
        """`charges` charges in [start_ms, end_ms) with the refunds and disputes that came before end_ms."""
        if end_ms <= start_ms:
            raise ValueError(f"history window is empty: start {start_ms} ≥ end {end_ms}")
        arrivals = sorted(self._history_arrival(start_ms, end_ms) for _ in range(charges))
        yield from self._versions(arrivals, end_ms, follow_up_scale=1.0)

    def stream(self, start_ms: int, charges_per_second: float) -> Iterator[ObjectVersion]:
        """Endless charges from start_ms at `charges_per_second` on average (Poisson arrivals)."""
        if charges_per_second <= 0:
            raise ValueError(f"charges_per_second must be positive, got {charges_per_second}")
        rate_per_ms = charges_per_second / 1000.0

        def arrivals() -> Iterator[tuple[int, int, Customer | None]]:
            t = float(start_ms)
            while True:
                t += self.rng.expovariate(rate_per_ms)
                yield int(t), 0, self._pick_customer()

        yield from self._versions(arrivals(), None, follow_up_scale=1.0 / STREAM_FOLLOW_UP_COMPRESSION)

    # --- arrivals ------------------------------------------------------------
    def _pick_customer(self) -> Customer | None:
        """A customer of the population (weighted by loyalty) or None for a guest checkout."""
        if self.rng.random() < SHARE_GUEST_CHECKOUTS:
            return None
        return self.customers[bisect(self.customer_weights, self.rng.random() * self.customer_total)]

    def _history_arrival(self, start_ms: int, end_ms: int) -> tuple[int, int, Customer | ref.Market]:
        buyer = self._pick_customer() or self.factory.markets.pick(self.rng)
        market = buyer if isinstance(buyer, ref.Market) else buyer.market
        offset_ms = market.utc_offset_hours * HOUR_MS
        span = end_ms - start_ms
        # Rejection sampling: uniform in the window, kept in proportion to local shopping activity.
        while True:
            t = start_ms + int(self.rng.random() * span)
            local_hour = int((t + offset_ms) // HOUR_MS) % 24
            if self.rng.random() < ref.HOURLY_ACTIVITY[local_hour]:
                self._seq += 1
                return t, self._seq, buyer

    # --- the merge of new charges and due follow-ups ---------------------------
    def _versions(self, arrivals, end_ms: int | None, follow_up_scale: float) -> Iterator[ObjectVersion]:
        pending: list[tuple[int, int, str, _ChargeHistory | None, Any]] = []
        self.clock = Clock(follow_up_scale)
        for t_ms, _, buyer in arrivals:
            if not pending:  # the first charge: payouts run from the next payout day on
                self._schedule(pending, self.clock.next_payout_ms(t_ms), "payout", None, None)
            while pending and pending[0][0] <= t_ms:
                yield from self._follow_up(heapq.heappop(pending), pending, follow_up_scale)
            yield from self._new_charge(t_ms, buyer, pending, follow_up_scale)
        assert end_ms is not None  # only history()'s arrivals run out, and it has an end
        while pending and pending[0][0] < end_ms:
            yield from self._follow_up(heapq.heappop(pending), pending, follow_up_scale)

    def _schedule(self, pending: list, due_ms: int, kind: str, history: _ChargeHistory | None, detail: Any) -> None:
        self._seq += 1
        heapq.heappush(pending, (due_ms, self._seq, kind, history, detail))

    def _new_charge(self, t_ms: int, buyer, pending: list, scale: float) -> Iterator[ObjectVersion]:
        rng = self.rng
        if buyer is None or isinstance(buyer, ref.Market):  # a guest checkout
            buyer = self.factory.customer(rng, buyer or self.factory.markets.pick(rng), None)
        card = buyer.cards[0] if len(buyer.cards) == 1 or rng.random() < 0.7 else buyer.cards[1]
        charge = self.charge(t_ms, buyer, card)
        yield ObjectVersion("charge", charge["id"], t_ms, charge)
        if charge["status"] != "succeeded":
            return
        yield self.balance.for_charge(t_ms, charge, self.clock)
        history = None
        if rng.random() < ref.SHARE_REFUNDED:
            history = _ChargeHistory(charge, t_ms, card.brand)
            delay = max(rng.lognormvariate(0.0, 1.0) * REFUND_DELAY_MEDIAN_MS, REFUND_DELAY_MIN_MS)
            self._schedule(pending, t_ms + int(delay * scale), "refund", history, None)
        if rng.random() < ref.SHARE_DISPUTED:
            history = history or _ChargeHistory(charge, t_ms, card.brand)
            delay = max(rng.lognormvariate(0.0, 0.8) * DISPUTE_DELAY_MEDIAN_MS, DISPUTE_DELAY_MIN_MS)
            self._schedule(pending, t_ms + int(delay * scale), "dispute", history, None)

    def _follow_up(self, entry, pending: list, scale: float) -> Iterator[ObjectVersion]:
        due_ms, _, kind, history, detail = entry
        if kind == "payout":
            for at_ms, version in self.balance.payout(due_ms, self.clock):
                if at_ms == due_ms:
                    yield version
                else:
                    self._schedule(pending, at_ms, "payout_paid", None, version)
            self._schedule(pending, self.clock.next_payout_ms(due_ms), "payout", None, None)
            return
        if kind == "payout_paid":
            yield detail
            return
        charge = history.latest
        if kind == "refund" and charge["disputed"]:
            return  # a charge under dispute is settled by the dispute, not refunded
        if kind == "refund":
            cur = currency(charge["currency"])
            full = self.rng.random() >= ref.SHARE_REFUNDS_PARTIAL
            amount = charge["amount"] if full else partial_amount(self.rng, cur, charge["amount"])
            refund = self.refund(due_ms, charge, amount)
            yield ObjectVersion("refund", refund["id"], due_ms, refund)
            yield self.balance.for_refund(due_ms, refund, self.clock)
            refunded_total = charge["amount_refunded"] + amount
            event_ms, version = history.next_version(
                due_ms, amount_refunded=refunded_total, refunded=refunded_total == charge["amount"]
            )
            yield ObjectVersion("charge", charge["id"], event_ms, version)
        elif kind == "dispute":
            dispute = self.dispute(due_ms, charge, history.card_brand)
            yield ObjectVersion("dispute", dispute["id"], due_ms, dispute)
            event_ms, version = history.next_version(due_ms, disputed=True)
            yield ObjectVersion("charge", charge["id"], event_ms, version)
            delay = self.rng.lognormvariate(0.0, 0.5) * DISPUTE_CLOSE_MEDIAN_MS
            self._schedule(pending, due_ms + int(delay * scale), "dispute_closed", history, (dispute, due_ms))
        else:  # dispute_closed
            dispute, opened_ms = detail
            closed = self.closed_dispute(dispute)
            closed_ms = max(due_ms, opened_ms + 1)
            if closed["status"] == "lost":
                withdrawal = self.balance.for_lost_dispute(closed_ms, closed, self.clock)
                closed["balance_transactions"] = [withdrawal.payload]
                yield withdrawal
            yield ObjectVersion("dispute", dispute["id"], closed_ms, closed)

    # --- the objects ---------------------------------------------------------
    def charge(self, t_ms: int, buyer: Customer, card: Card) -> dict[str, Any]:
        rng = self.rng
        cur = buyer.currency
        amount = charge_amount(rng, cur, buyer.units_per_usd)
        wallet_type = self.wallets.pick(rng)
        failure_rate = ref.BASE_FAILURE_RATE
        if card.country != buyer.market.country:
            failure_rate += ref.EXTRA_FAILURE_RATE_CROSS_BORDER
        if card.funding == "prepaid":
            failure_rate += ref.EXTRA_FAILURE_RATE_PREPAID
        decline = self.declines.pick(rng) if rng.random() < failure_rate else None
        succeeded = decline is None
        suffix = random_token(rng, 13)
        charge_id = f"ch_3{suffix[:5]}{ACCOUNT_FRAGMENT}{suffix[5:]}"
        created = t_ms // 1000
        manual_review = succeeded and rng.random() < ref.SHARE_MANUAL_REVIEW
        three_ds = (
            wallet_type is None and buyer.market.country in ref.SCA_COUNTRIES and rng.random() < ref.SHARE_3DS_UNDER_SCA
        )
        exp_year = time.gmtime(created).tm_year + card.years_to_expiry
        return {
            "amount": amount,
            "amount_captured": amount if succeeded else 0,
            "amount_refunded": 0,
            "application": None,
            "application_fee": None,
            "application_fee_amount": None,
            "balance_transaction": f"txn_3{suffix[:5]}{ACCOUNT_FRAGMENT}{suffix[5:]}" if succeeded else None,
            "billing_details": {
                "address": {
                    "city": buyer.city if buyer.line1 else None,
                    "country": buyer.market.country,
                    "line1": buyer.line1,
                    "line2": None,
                    "postal_code": buyer.postal_code,
                    "state": buyer.state if buyer.line1 else None,
                },
                "email": buyer.email,
                "name": buyer.name,
                "phone": None,
                "tax_id": None,
            },
            "calculated_statement_descriptor": ref.STATEMENT_DESCRIPTOR,
            "captured": succeeded,
            "created": created,
            "currency": cur.code,
            "customer": buyer.id,
            "description": f"{rng.choice(ref.PRODUCTS)} (order {digits(rng, 8)})",
            "disputed": False,
            "failure_balance_transaction": None,
            "failure_code": None if decline is None else decline.failure_code,
            "failure_message": None if decline is None else decline.failure_message,
            "fraud_details": {},
            "id": charge_id,
            "livemode": False,
            "metadata": {"order_id": f"ord_{random_token(rng, 10)}", "channel": "web" if rng.random() < 0.7 else "app"},
            "object": "charge",
            "on_behalf_of": None,
            "outcome": self._outcome(decline, manual_review),
            "paid": succeeded,
            "payment_intent": f"pi_3{suffix[:5]}{ACCOUNT_FRAGMENT}{suffix[5:]}",
            "payment_method": card.payment_method,
            "payment_method_details": {
                "card": {
                    "amount_authorized": amount if succeeded else None,
                    "authorization_code": digits(rng, 6) if succeeded else None,
                    "brand": card.brand,
                    "checks": {
                        "address_line1_check": "pass" if buyer.line1 else None,
                        "address_postal_code_check": "pass" if buyer.postal_code else None,
                        "cvc_check": None
                        if wallet_type
                        else ("fail" if decline and decline.decline_code == "incorrect_cvc" else "pass"),
                    },
                    "country": card.country,
                    "exp_month": card.exp_month,
                    "exp_year": exp_year,
                    "extended_authorization": {"status": "disabled"},
                    "fingerprint": card.fingerprint,
                    "funding": card.funding,
                    "incremental_authorization": {"status": "unavailable"},
                    "installments": self._installments(buyer),
                    "last4": card.last4,
                    "mandate": None,
                    "multicapture": {"status": "unavailable"},
                    "network": card.network,
                    "network_token": {"used": wallet_type in ("apple_pay", "google_pay")},
                    "network_transaction_id": digits(rng, 15) if succeeded else None,
                    "overcapture": {"maximum_amount_capturable": amount, "status": "unavailable"},
                    "regulated_status": (
                        "regulated" if card.country == "US" and card.funding == "debit" else "unregulated"
                    ),
                    "three_d_secure": self._three_d_secure(card) if three_ds else None,
                    "transaction_link_id": None,
                    "wallet": (
                        None
                        if wallet_type is None
                        else {"dynamic_last4": None if wallet_type == "link" else digits(rng, 4), "type": wallet_type}
                    ),
                },
                "type": "card",
            },
            "receipt_email": buyer.email if succeeded and rng.random() < 0.5 else None,
            "receipt_number": None,
            "receipt_url": (f"https://pay.stripe.com/receipts/payment/{random_token(rng, 96)}" if succeeded else None),
            "refunded": False,
            # Not expanded by default since API 2022-11-15: an empty page with its URL, as in Stripe's example.
            "refunds": {"data": [], "has_more": False, "object": "list", "url": f"/v1/charges/{charge_id}/refunds"},
            "review": f"prv_1{random_token(rng, 23)}" if manual_review else None,
            "shipping": None,
            "source": None,
            "source_transfer": None,
            "statement_descriptor": None,
            "statement_descriptor_suffix": None,
            "status": "succeeded" if succeeded else "failed",
            "transfer_data": None,
            "transfer_group": None,
        }

    def _outcome(self, decline: ref.Decline | None, manual_review: bool) -> dict[str, Any]:
        if decline is None:
            return {
                "advice_code": None,
                "network_advice_code": None,
                "network_decline_code": None,
                "network_status": "approved_by_network",
                "reason": "elevated_risk_level" if manual_review else None,
                "seller_message": (
                    "Stripe evaluated this payment as having elevated risk, and placed it in your manual review queue."
                    if manual_review
                    else "Payment complete."
                ),
                "type": "manual_review" if manual_review else "authorized",
            }
        if decline.blocked_by_radar:
            return {
                "advice_code": None,
                "network_advice_code": None,
                "network_decline_code": None,
                "network_status": "not_sent_to_network",
                "reason": decline.decline_code,
                "seller_message": "Stripe blocked this payment as too risky.",
                "type": "blocked",
            }
        return {
            "advice_code": decline.advice_code,
            "network_advice_code": None,
            "network_decline_code": decline.network_decline_code,
            "network_status": "declined_by_network",
            "reason": decline.decline_code,
            "seller_message": (
                "The bank did not return any further details with this decline."
                if decline.decline_code == "generic_decline"
                else f"The bank returned the decline code `{decline.decline_code}`."
            ),
            "type": "issuer_declined",
        }

    def _installments(self, buyer: Customer) -> dict[str, Any] | None:
        # Stripe offers card installments (meses sin intereses) in Mexico only.
        if buyer.market.country != "MX" or buyer.currency.code != "mxn" or self.rng.random() >= 0.15:
            return None
        return {"plan": {"count": self.rng.choice((3, 6, 12)), "interval": "month", "type": "fixed_count"}}

    def _three_d_secure(self, card: Card) -> dict[str, Any]:
        rng = self.rng
        return {
            "authentication_flow": "challenge" if rng.random() < 0.3 else "frictionless",
            "electronic_commerce_indicator": "02" if card.brand == "mastercard" else "05",
            "exemption_indicator": None,
            "result": "authenticated",
            "result_reason": None,
            "transaction_id": f"{random_token(rng, 8)}-{random_token(rng, 4)}-{random_token(rng, 4)}".lower(),
            "version": "2.2.0",
        }

    def refund(self, t_ms: int, charge: dict[str, Any], amount: int) -> dict[str, Any]:
        return {
            "amount": amount,
            "balance_transaction": stripe_id(self.rng, "txn"),
            "charge": charge["id"],
            "created": t_ms // 1000,
            "currency": charge["currency"],
            "customer": charge["customer"],
            "customer_account": None,
            "destination_details": {
                "card": {"type": "reversal" if t_ms - charge["created"] * 1000 < ref.REVERSAL_WINDOW_MS else "refund"},
                "type": "card",
            },
            "id": stripe_id(self.rng, "re"),
            "metadata": {},
            "object": "refund",
            "payment_intent": charge["payment_intent"],
            "payment_method": charge["payment_method"],
            "reason": self.refund_reasons.pick(self.rng),
            "receipt_number": None,
            "source_transfer_reversal": None,
            "status": "succeeded",
            "transfer_reversal": None,
        }

    def dispute(self, t_ms: int, charge: dict[str, Any], brand: str) -> dict[str, Any]:
        rng = self.rng
        reason = self.dispute_reasons.pick(rng)
        inquiry = brand in ("visa", "amex") and rng.random() < ref.SHARE_DISPUTES_AS_INQUIRY
        created = t_ms // 1000
        due_day = created // 86_400 + rng.randint(7, 21)
        return {
            "amount": charge["amount"],
            "balance_transactions": [],
            "charge": charge["id"],
            "created": created,
            "currency": charge["currency"],
            "enhanced_eligibility_types": (
                ["visa_compelling_evidence_3"] if brand == "visa" and reason == "fraudulent" else []
            ),
            "evidence": dict.fromkeys(EVIDENCE_FIELDS) | {"enhanced_evidence": {}},
            "evidence_details": {
                "due_by": due_day * 86_400 + 86_399,
                "enhanced_eligibility": {},
                "has_evidence": False,
                "past_due": False,
                "submission_count": 0,
            },
            "id": stripe_id(rng, "dp"),
            "is_charge_refundable": inquiry,
            "livemode": False,
            "metadata": {},
            "object": "dispute",
            "payment_intent": charge["payment_intent"],
            "payment_method_details": {
                "card": {
                    "brand": brand,
                    "case_type": "inquiry" if inquiry else "chargeback",
                    "network": brand,
                    "network_reason_code": self.dispute_codes[reason].get(brand),
                },
                "type": "card",
            },
            "reason": reason,
            "status": "warning_needs_response" if inquiry else "needs_response",
        }

    def closed_dispute(self, dispute: dict[str, Any]) -> dict[str, Any]:
        if dispute["status"] == "warning_needs_response":
            status = "warning_closed"
        else:
            status = "won" if self.rng.random() < ref.SHARE_CHARGEBACKS_WON else "lost"
        evidence_details = {**dispute["evidence_details"], "has_evidence": True, "submission_count": 1}
        return {
            **dispute,
            "evidence": {**dispute["evidence"], "uncategorized_text": "Customer order history and delivery proof."},
            "evidence_details": evidence_details,
            "is_charge_refundable": False,
            "status": status,
        }


EVIDENCE_FIELDS = (
    "access_activity_log",
    "billing_address",
    "cancellation_policy",
    "cancellation_policy_disclosure",
    "cancellation_rebuttal",
    "customer_communication",
    "customer_email_address",
    "customer_name",
    "customer_purchase_ip",
    "customer_signature",
    "duplicate_charge_documentation",
    "duplicate_charge_explanation",
    "duplicate_charge_id",
    "product_description",
    "receipt",
    "refund_policy",
    "refund_policy_disclosure",
    "refund_refusal_explanation",
    "service_date",
    "service_documentation",
    "shipping_address",
    "shipping_carrier",
    "shipping_date",
    "shipping_documentation",
    "shipping_tracking_number",
    "uncategorized_file",
    "uncategorized_text",
)
