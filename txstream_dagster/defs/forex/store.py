"""raw.forex_rates: read what a partition holds, write a fetch over it without making it worse."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

import psycopg

from txstream_dagster.defs.forex.rates import PublishedRates, StoredRate, WritePlan, plan_write

FOREX_TABLE = "raw.forex_rates"


@dataclass(frozen=True)
class PartitionWrite:
    rate_date: date
    published: PublishedRates
    plan: WritePlan
    currencies_stored: int  # quotes the partition holds after the write


def stored_rates(conn: psycopg.Connection, rate_date: date, base: str) -> dict[str, StoredRate]:
    rows = conn.execute(
        "SELECT quote, rate, source, effective_date FROM raw.forex_rates WHERE rate_date = %s AND base = %s",
        (rate_date, base),
    ).fetchall()
    return {quote: StoredRate(rate, source, effective_date) for quote, rate, source, effective_date in rows}


def save_published_rates(conn: psycopg.Connection, rate_date: date, published: PublishedRates) -> PartitionWrite:
    """Write one partition in one transaction: all the planned rows or none."""
    with conn.transaction():
        # Two runs writing the same date (a schedule tick and a backfill) take turns,
        # so each plans against what the other committed.
        conn.execute(
            "SELECT pg_advisory_xact_lock(hashtextextended(%s, 0))", (f"{FOREX_TABLE}/{rate_date.isoformat()}",)
        )
        stored = stored_rates(conn, rate_date, published.base)
        plan = plan_write(stored, published)
        with conn.cursor() as cur:
            cur.executemany(
                """
                INSERT INTO raw.forex_rates (rate_date, base, quote, rate, effective_date, source, fetched_at)
                VALUES (%s, %s, %s, %s, %s, %s, now())
                ON CONFLICT (rate_date, base, quote) DO UPDATE
                SET rate = EXCLUDED.rate, effective_date = EXCLUDED.effective_date,
                    source = EXCLUDED.source, fetched_at = EXCLUDED.fetched_at, landed_xid = pg_current_xact_id()
                """,
                [
                    (rate_date, published.base, quote, rate, published.effective_date, published.source)
                    for quote, rate in sorted(plan.write.items())
                ],
            )
    return PartitionWrite(rate_date, published, plan, len(stored.keys() | plan.write.keys()))
