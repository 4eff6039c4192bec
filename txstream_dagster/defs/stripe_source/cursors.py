"""Where an incremental Stripe pull has got to, kept in `ops.source_cursors`.

A cursor is saved only after Kafka acknowledged everything before it, so a crash
replays at most one window (at-least-once; the stream dedupes on object id and
event time) and a clean restart publishes nothing twice.
"""

from __future__ import annotations

from typing import Any

from psycopg.types.json import Jsonb

from txstream_dagster.resources import PostgresResource


class CursorStore:
    def __init__(self, postgres: PostgresResource, source: str):
        self.postgres = postgres
        self.source = source

    def load(self, stream: str) -> dict[str, Any] | None:
        row = self.postgres.fetch_one(
            "SELECT position FROM ops.source_cursors WHERE source = %s AND stream = %s", (self.source, stream)
        )
        return row[0] if row else None

    def save(self, stream: str, position: dict[str, Any]) -> None:
        with self.postgres.connect() as conn:
            conn.execute(
                "INSERT INTO ops.source_cursors (source, stream, position) VALUES (%s, %s, %s) "
                "ON CONFLICT (source, stream) DO UPDATE SET position = EXCLUDED.position, updated_at = now()",
                (self.source, stream, Jsonb(position)),
            )
