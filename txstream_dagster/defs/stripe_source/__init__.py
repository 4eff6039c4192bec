"""Stripe source → Kafka: real Stripe when STRIPE_API_KEY is set, a faithful seeded generator otherwise."""
