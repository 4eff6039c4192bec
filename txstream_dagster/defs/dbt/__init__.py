"""dbt stage: staging, star schema and monitoring views over raw.transactions and raw.forex_rates, as Dagster assets."""
