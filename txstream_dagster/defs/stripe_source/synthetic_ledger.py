"""What "Stripe" holds in synthetic mode: the latest version of every object the generator published.

Recorded in `ops.synthetic_stripe_objects` before each chunk is sent to Kafka (Stripe
holds an object before anyone hears of it), so the daily reconciliation can list
what the source produced, through a local Stripe-compatible API
(local_stripe_api.py), and compare it with what landed.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import orjson
import psycopg

from txstream_dagster.defs.stripe_source.object_versions import ObjectVersion
from txstream_dagster.resources import PostgresResource

# One statement per chunk; a newer version replaces an older one, never the reverse.
RECORD = """
INSERT INTO ops.synthetic_stripe_objects (object_id, object_type, created, event_time_ms, payload)
SELECT * FROM unnest(%s::text[], %s::text[], %s::bigint[], %s::bigint[], %s::jsonb[])
ON CONFLICT (object_id) DO UPDATE SET
    object_type = EXCLUDED.object_type, created = EXCLUDED.created,
    event_time_ms = EXCLUDED.event_time_ms, payload = EXCLUDED.payload
WHERE EXCLUDED.event_time_ms >= ops.synthetic_stripe_objects.event_time_ms
"""


def latest_versions(versions: list[ObjectVersion]) -> list[ObjectVersion]:
    """One version per object, its latest (one upsert may not touch a row twice). Pure."""
    latest: dict[str, ObjectVersion] = {}
    for version in versions:
        held = latest.get(version.object_id)
        if held is None or version.event_time_ms >= held.event_time_ms:
            latest[version.object_id] = version
    return list(latest.values())


class SyntheticLedger:
    def __init__(self, conn: psycopg.Connection):
        self.conn = conn

    def record(self, versions: list[ObjectVersion]) -> None:
        rows = latest_versions(versions)
        self.conn.execute(
            RECORD,
            (
                [v.object_id for v in rows],
                [v.object_type for v in rows],
                [v.payload["created"] for v in rows],
                [v.event_time_ms for v in rows],
                [orjson.dumps(v.payload).decode() for v in rows],
            ),
        )
        self.conn.commit()


@contextmanager
def synthetic_ledger(postgres: PostgresResource) -> Iterator[SyntheticLedger]:
    with postgres.connect() as conn:
        yield SyntheticLedger(conn)


# Stripe's list order: newest first; `starting_after` continues after the object it names.
PAGE = """
SELECT payload FROM ops.synthetic_stripe_objects
WHERE object_type = %(type)s AND created >= %(gte)s AND created < %(lt)s
  AND (%(after)s::text IS NULL
       OR (created, object_id) < (SELECT created, object_id FROM ops.synthetic_stripe_objects
                                  WHERE object_id = %(after)s))
ORDER BY created DESC, object_id DESC
LIMIT %(limit)s
"""


def ledger_page(
    postgres: PostgresResource, object_type: str, gte: int, lt: int, starting_after: str | None, limit: int
) -> tuple[list[dict[str, Any]], bool]:
    """One page of the ledger's objects of a type created in [gte, lt), as Stripe lists them; and has_more."""
    rows = postgres.fetch_all(
        PAGE, {"type": object_type, "gte": gte, "lt": lt, "after": starting_after, "limit": limit + 1}
    )
    return [payload for (payload,) in rows[:limit]], len(rows) > limit
