"""Checks the job makes before it starts Spark, so a missing dependency fails in seconds, clearly."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from contextlib import contextmanager

import psycopg


class PreflightError(RuntimeError):
    pass


def describe_database(url: str) -> str:
    """user@host:port/db, never the password."""
    info = psycopg.conninfo.conninfo_to_dict(url)
    return f"{info.get('user', '?')}@{info.get('host', 'localhost')}:{info.get('port', 5432)}/{info.get('dbname', '?')}"


def check_java() -> None:
    java_home = os.environ.get("JAVA_HOME")
    java = os.path.join(java_home, "bin", "java") if java_home else shutil.which("java")
    if not java or not os.access(java, os.X_OK):
        raise PreflightError(
            "Java was not found (JAVA_HOME unset or wrong, no `java` on PATH): Spark needs Java 17 or newer. "
            "Install it (e.g. apt install openjdk-17-jre-headless) or set JAVA_HOME."
        )


def connect(url: str, **kwargs) -> psycopg.Connection:
    try:
        return psycopg.connect(url, connect_timeout=5, application_name="txstream-stream", **kwargs)
    except psycopg.Error as exc:
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise PreflightError(
            f"Cannot connect to PostgreSQL {describe_database(url)} (TXSTREAM_POSTGRES_URL): {reason}"
        ) from None


def check_warehouse(url: str) -> None:
    with connect(url) as conn:
        missing = [
            table
            for table in ("raw.transactions", "raw.quarantined_events", "ops.stream_offsets", "ops.stream_batches")
            if conn.execute("SELECT to_regclass(%s)", [table]).fetchone()[0] is None
        ]
    if missing:
        raise PreflightError(
            f"PostgreSQL {describe_database(url)} has no {', '.join(missing)}: run `txstream migrate` first."
        )


def check_broker(bootstrap: str, topic: str) -> None:
    from kafka import KafkaAdminClient
    from kafka.errors import KafkaError

    try:
        admin = KafkaAdminClient(bootstrap_servers=bootstrap, bootstrap_timeout_ms=5_000, request_timeout_ms=10_000)
    except KafkaError as exc:
        raise PreflightError(f"Cannot reach Kafka at {bootstrap} (TXSTREAM_KAFKA_BOOTSTRAP): {exc}") from None
    try:
        [description] = admin.describe_topics([topic])
    finally:
        admin.close()
    if description["error_code"] != 0:
        raise PreflightError(
            f"Kafka topic {topic!r} does not exist on {bootstrap}: create it (`txstream up` or "
            "`txstream topic create`) or fix TXSTREAM_TOPIC."
        )


def stream_lock_key(checkpoint: str) -> str:
    return f"txstream-stream:{checkpoint}"


@contextmanager
def stream_lock(url: str, checkpoint: str) -> Iterator[bool]:
    """Held for the job's lifetime: two queries on one checkpoint would corrupt it."""
    conn = connect(url, autocommit=True)
    try:
        acquired = conn.execute(
            "SELECT pg_try_advisory_lock(hashtextextended(%s, 0))", [stream_lock_key(checkpoint)]
        ).fetchone()[0]
        yield acquired
    finally:
        conn.close()
