"""Forex stage: daily GBP rates for every currency, partitioned by date, with an offline source."""
