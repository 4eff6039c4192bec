"""Write mode: create charges (and some refunds) in a Stripe *test-mode* account, for the pull to ingest.

Only with a test key and an explicit flag (`txstream produce --create-test-charges N`).
Cards are Stripe's test tokens (tok_*), spread over brands, countries, declines and
disputes; amounts and currencies come from the synthetic generator's markets. Each
charge carries an idempotency key derived from the seed, so a retried or repeated
run with the same seed creates nothing twice.
"""

from __future__ import annotations

import random
import time
from collections import Counter
from collections.abc import Callable

from txstream_dagster.currencies import currency
from txstream_dagster.defs.stripe_source import synthetic_reference as ref
from txstream_dagster.defs.stripe_source.stripe_api import CardDeclined, StripeApi, StripeSourceError
from txstream_dagster.defs.stripe_source.synthetic_charges import Weighted, charge_amount

# Stripe's test tokens (docs: Testing → cards, declines, fraud, disputes).
TEST_CARD_TOKENS = (
    ("tok_visa", 30),
    ("tok_visa_debit", 8),
    ("tok_mastercard", 15),
    ("tok_mastercard_debit", 5),
    ("tok_mastercard_prepaid", 2),
    ("tok_amex", 6),
    ("tok_discover", 2),
    ("tok_diners", 1),
    ("tok_jcb", 2),
    ("tok_unionpay", 1),
    ("tok_gb", 4),
    ("tok_de", 3),
    ("tok_fr", 3),
    ("tok_jp", 3),
    ("tok_br", 1),
    ("tok_mx", 1),
    ("tok_chargeDeclined", 2),
    ("tok_chargeDeclinedInsufficientFunds", 2),
    ("tok_chargeDeclinedExpiredCard", 1),
    ("tok_chargeDeclinedIncorrectCvc", 1),
    ("tok_chargeDeclinedProcessingError", 1),
    ("tok_chargeDeclinedFraudulent", 1),
    ("tok_riskLevelElevated", 1),
    ("tok_radarBlock", 1),
    ("tok_createDispute", 1),
    ("tok_createDisputeProductNotReceived", 1),
    ("tok_createDisputeInquiry", 1),
)
SHARE_REFUNDED = 0.08
# Stripe's test mode allows 25 requests/s; stay under it.
REQUESTS_PER_SECOND = 20.0


def create_test_charges(
    api: StripeApi, mode: str, count: int, seed: int, progress: Callable[[int], None] | None = None
) -> Counter:
    """Create `count` test charges; returns how many succeeded, were declined, and were refunded."""
    if mode != "test":
        raise StripeSourceError(
            "--create-test-charges creates real charges: it runs only with a test-mode key "
            "(sk_test_… or rk_test_…), and STRIPE_API_KEY is not one."
        )
    rng = random.Random(seed)
    tokens = Weighted(TEST_CARD_TOKENS)
    markets = Weighted([(market, market.weight) for market in ref.MARKETS])
    outcome: Counter = Counter()
    for index in range(count):
        started = time.monotonic()
        market = markets.pick(rng)
        token = tokens.pick(rng)
        amount = charge_amount(rng, currency(market.currency), market.units_per_usd)
        try:
            charge = api.request(
                "post",
                "/v1/charges",
                amount=amount,
                currency=market.currency,
                source=token,
                description=f"txstream test charge {seed}-{index}",
                metadata={"txstream_seed": str(seed), "txstream_index": str(index)},
                idempotency_key=f"txstream-test-charge-{seed}-{index}",
            )
        except CardDeclined:
            outcome["declined"] += 1  # a declined test card: Stripe keeps the failed charge, the pull sees it
        else:
            outcome["succeeded"] += 1
            if rng.random() < SHARE_REFUNDED:
                api.request(
                    "post", "/v1/refunds", charge=charge["id"], idempotency_key=f"txstream-test-refund-{seed}-{index}"
                )
                outcome["refunded"] += 1
        if progress:
            progress(1)
        time.sleep(max(0.0, 1.0 / REQUESTS_PER_SECOND - (time.monotonic() - started)))
    return outcome
