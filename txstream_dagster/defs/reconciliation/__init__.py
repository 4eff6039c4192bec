"""Daily reconciliation of what landed with what Stripe holds."""
