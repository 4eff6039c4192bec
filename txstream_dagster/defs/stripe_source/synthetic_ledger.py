"""What "Stripe" holds in synthetic mode: the latest version of every object the generator published.

A balance transaction the generator published naming its payout (ObjectVersion.payout_id) keeps
that payout, as Stripe does, when a later version names none: the local API lists it under
`GET /v1/balance_transactions?payout=po_…`.

Recorded in `ops.synthetic_stripe_objects` as each chunk is sent to Kafka, so the
daily reconciliation can list what the source produced, through a local
Stripe-compatible API (local_stripe_api.py), and compare it with what landed.

Writing the ledger costs about as much as publishing (a COPY of every object's
JSON), so a worker thread writes each chunk while the publisher sends it: one chunk
in flight, the next `record` waits for it, and leaving `synthetic_ledger` waits for
the last (bench/producer_throughput.py measures both ways).
"""

from __future__ import annotations

from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from typing import Any

import orjson
import psycopg
from psycopg import sql

from txstream_dagster.defs.stripe_source.local_stripe_api import ListRequest
from txstream_dagster.defs.stripe_source.object_versions import ObjectVersion
from txstream_dagster.resources import PostgresResource

# A chunk is copied into a temporary table, then upserted: a newer version replaces an older one, never the reverse.
CREATE_STAGE = sql.SQL(
    "CREATE TEMP TABLE synthetic_ledger_stage (LIKE ops.synthetic_stripe_objects) ON COMMIT DELETE ROWS"
)
COPY_TO_STAGE = sql.SQL(
    "COPY synthetic_ledger_stage (object_id, object_type, created, event_time_ms, payload, payout_id) FROM STDIN"
)
UPSERT = sql.SQL("""
INSERT INTO ops.synthetic_stripe_objects SELECT * FROM synthetic_ledger_stage
ON CONFLICT (object_id) DO UPDATE SET
    object_type = EXCLUDED.object_type, created = EXCLUDED.created,
    event_time_ms = EXCLUDED.event_time_ms, payload = EXCLUDED.payload,
    payout_id = coalesce(EXCLUDED.payout_id, ops.synthetic_stripe_objects.payout_id)
WHERE EXCLUDED.event_time_ms >= ops.synthetic_stripe_objects.event_time_ms
""")


def latest_versions(versions: list[ObjectVersion]) -> list[ObjectVersion]:
    """One version per object, its latest (one upsert may not touch a row twice), with the payout an earlier
    one named if it names none. Pure."""
    latest: dict[str, ObjectVersion] = {}
    for version in versions:
        held = latest.get(version.object_id)
        if held is None or version.event_time_ms >= held.event_time_ms:
            if held is not None and version.payout_id is None:
                version = version._replace(payout_id=held.payout_id)
            latest[version.object_id] = version
    return list(latest.values())


class SyntheticLedger:
    def __init__(self, conn: psycopg.Connection):
        self.conn = conn
        conn.execute(CREATE_STAGE)
        self._writer = ThreadPoolExecutor(max_workers=1, thread_name_prefix="synthetic-ledger")
        self._in_flight: Future[None] | None = None

    def record(self, versions: list[ObjectVersion]) -> None:
        """Start writing `versions`, once the chunk before is written (its error, if any, is raised here)."""
        self.wait()
        self._in_flight = self._writer.submit(self._write, latest_versions(versions))

    def wait(self) -> None:
        """Until every chunk recorded so far is written."""
        if self._in_flight is not None:
            in_flight, self._in_flight = self._in_flight, None
            in_flight.result()

    def close(self) -> None:
        try:
            self.wait()
        finally:
            self._writer.shutdown()

    def _write(self, rows: list[ObjectVersion]) -> None:
        with self.conn.cursor() as cur:
            with cur.copy(COPY_TO_STAGE) as copy:
                for v in rows:
                    payload = orjson.dumps(v.payload).decode()
                    copy.write_row(
                        (v.object_id, v.object_type, v.payload["created"], v.event_time_ms, payload, v.payout_id)
                    )
            cur.execute(UPSERT)
        self.conn.commit()


@contextmanager
def synthetic_ledger(postgres: PostgresResource) -> Iterator[SyntheticLedger]:
    """A ledger on its own connection; leaving waits until everything recorded is written."""
    with postgres.connect() as conn:
        ledger = SyntheticLedger(conn)
        try:
            yield ledger
        finally:
            ledger.close()


# Stripe's list order: newest first; `starting_after` continues after the object it names.
PAGE = """
SELECT payload FROM ops.synthetic_stripe_objects
WHERE object_type = %(type)s AND created >= %(gte)s AND created < %(lt)s
  AND (%(payout)s::text IS NULL OR payout_id = %(payout)s)
  AND (%(after)s::text IS NULL
       OR (created, object_id) < (SELECT created, object_id FROM ops.synthetic_stripe_objects
                                  WHERE object_id = %(after)s))
ORDER BY created DESC, object_id DESC
LIMIT %(limit)s
"""


def ledger_page(postgres: PostgresResource, request: ListRequest) -> tuple[list[dict[str, Any]], bool]:
    """One page of the ledger's objects, as Stripe lists them; and has_more."""
    rows = postgres.fetch_all(
        PAGE,
        {
            "type": request.object_type,
            "gte": request.created_gte,
            "lt": request.created_lt,
            "payout": request.payout,
            "after": request.starting_after,
            "limit": request.limit + 1,
        },
    )
    return [payload for (payload,) in rows[: request.limit]], len(rows) > request.limit
