"""The Stripe account the source pulls from: its key, where its API is, how patiently to call it."""

from __future__ import annotations

from datetime import UTC, date, datetime

import dagster as dg
import stripe
from pydantic import Field, field_validator

# Stripe opened in 2011: no account holds an object created before this.
ACCOUNT_HISTORY_STARTS = date(2011, 1, 1)
# Stripe writes every account's test and live data apart; a cursor belongs to one of them.
KEY_MODES = {"sk_test_": "test", "rk_test_": "test", "sk_live_": "live", "rk_live_": "live"}


class StripeResource(dg.ConfigurableResource):
    """A Stripe account. `api_key` comes from STRIPE_API_KEY (as a Dagster EnvVar where Dagster runs);
    unset means the source runs synthetic."""

    api_key: str | None = Field(default=None, description="Stripe secret or restricted key (from STRIPE_API_KEY).")
    api_base: str | None = Field(
        default=None, description="Stripe API base URL; unset → https://api.stripe.com (TXSTREAM_STRIPE_API_BASE)."
    )
    max_network_retries: int = Field(
        default=4, ge=0, description="Retries of connection errors and 5xx, with the stripe library's back-off."
    )
    backfill_from: str | None = Field(  # Dagster config has no date type: YYYY-MM-DD, checked below
        default=None,
        description="First pull: objects created from this UTC date on are listed (Stripe keeps only 30 days of "
        "events, so older history comes from the list endpoints); unset → the account's whole history "
        "(TXSTREAM_STRIPE_BACKFILL_FROM).",
    )
    settle_seconds: int = Field(
        default=15, ge=0, description="Events younger than this wait for the next pull (list results settle)."
    )
    window_seconds: int = Field(
        default=3_600,
        ge=1,
        description="Span of the first cursor step; later steps widen when quiet, narrow when busy.",
    )

    @field_validator("backfill_from")
    @classmethod
    def _a_date(cls, value: str | None) -> str | None:
        if value is not None:
            try:
                date.fromisoformat(value)
            except ValueError:
                raise ValueError(f"backfill_from {value!r} is not a date: use YYYY-MM-DD, e.g. 2024-01-01") from None
        return value

    @property
    def backfill_from_s(self) -> int:
        """The backfill's first second (epoch), UTC."""
        start = date.fromisoformat(self.backfill_from) if self.backfill_from else ACCOUNT_HISTORY_STARTS
        return int(datetime.combine(start, datetime.min.time(), UTC).timestamp())

    @property
    def configured(self) -> bool:
        return bool(self.api_key)

    @property
    def mode(self) -> str:
        """`test` or `live`, from the key's prefix (the same account's two separate data sets)."""
        for prefix, mode in KEY_MODES.items():
            if (self.api_key or "").startswith(prefix):
                return mode
        return "unknown"

    @property
    def key_warning(self) -> str | None:
        """What to say when the key can do more than the source needs (it only reads)."""
        if not (self.api_key or "").startswith("sk_"):
            return None
        return (
            "STRIPE_API_KEY is a secret key (sk_…), which can do anything in the account, refunds and payouts "
            "included, while txstream only reads. Create a restricted key (rk_…) with Read access to Charges, "
            "Refunds, Disputes, Payouts, Balance and Events (Stripe Dashboard → Developers → API keys) and use "
            "that instead."
        )

    def client(self) -> stripe.StripeClient:
        if not self.api_key:
            raise RuntimeError("STRIPE_API_KEY is not set: the Stripe source needs a secret or restricted key.")
        return stripe.StripeClient(
            self.api_key,
            base_addresses={"api": self.api_base} if self.api_base else None,
            max_network_retries=self.max_network_retries,
        )
