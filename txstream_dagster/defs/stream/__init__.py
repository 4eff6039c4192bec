"""Kafka → Spark → raw.transactions: the job launched and watched by Dagster."""
