"""What landed for a day, and where the reconciliation's findings are kept (ops.reconciliation_results)."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta

from psycopg.types.json import Jsonb

from txstream_dagster.defs.reconciliation.compare import DayReconciliation
from txstream_dagster.resources import PostgresResource


def day_bounds(day: date) -> tuple[datetime, datetime]:
    start = datetime.combine(day, time.min, UTC)
    return start, start + timedelta(days=1)


def landed_on(postgres: PostgresResource, day: date, object_type: str, source: str) -> dict[str, tuple[int, str]]:
    """Object id → (amount, currency) of the objects of one type and source created on `day` (UTC)."""
    start, end = day_bounds(day)
    rows = postgres.fetch_all(
        """SELECT object_id, amount, currency FROM raw.transactions
           WHERE object_type = %s AND source = %s AND created_at >= %s AND created_at < %s""",
        (object_type, source, start, end),
    )
    return {object_id: (amount, currency) for object_id, amount, currency in rows}


def quarantined_among(postgres: PostgresResource, object_ids: list[str]) -> set[str]:
    """Which of `object_ids` have a message in the quarantine (keyed by object id)."""
    if not object_ids:
        return set()
    rows = postgres.fetch_all(
        "SELECT DISTINCT kafka_key FROM raw.quarantined_events WHERE kafka_key = ANY(%s)",
        ([object_id.encode() for object_id in object_ids],),
    )
    return {bytes(key).decode() for (key,) in rows}


def save(postgres: PostgresResource, results: list[DayReconciliation]) -> None:
    with postgres.connect() as conn:
        for r in results:
            conn.execute(
                """INSERT INTO ops.reconciliation_results (day, object_type, stripe_count, landed_count,
                       stripe_amounts, landed_amounts, missing_ids, quarantined_ids, extra_ids, mismatched_ids)
                   VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s)
                   ON CONFLICT (day, object_type) DO UPDATE SET
                       stripe_count = EXCLUDED.stripe_count, landed_count = EXCLUDED.landed_count,
                       stripe_amounts = EXCLUDED.stripe_amounts, landed_amounts = EXCLUDED.landed_amounts,
                       missing_ids = EXCLUDED.missing_ids, quarantined_ids = EXCLUDED.quarantined_ids,
                       extra_ids = EXCLUDED.extra_ids, mismatched_ids = EXCLUDED.mismatched_ids,
                       checked_at = now()""",
                (
                    r.day,
                    r.object_type,
                    r.stripe_count,
                    r.landed_count,
                    Jsonb(r.stripe_amounts),
                    Jsonb(r.landed_amounts),
                    r.missing_ids,
                    r.quarantined_ids,
                    r.extra_ids,
                    r.mismatched_ids,
                ),
            )
