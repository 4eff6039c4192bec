"""The warehouse: PostgreSQL, external (TXSTREAM_POSTGRES_URL) or embedded."""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import dagster as dg
import psycopg
from psycopg import sql

from txstream_dagster.db.migrate import migrate, set_reader_password
from txstream_dagster.local_stack import LocalStack
from txstream_dagster.settings import get_settings, redact_url

CONNECT_TIMEOUT_S = 5
READER_ROLE = "txstream_reader"


class WarehouseUnavailable(RuntimeError):
    pass


def _explain(exc: psycopg.OperationalError, url: str, embedded: bool, as_reader: bool = False) -> str:
    message = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    password = psycopg.conninfo.conninfo_to_dict(url).get("password")
    if password:
        message = message.replace(password, "***")
    where = redact_url(url)
    if as_reader and re.search(r"password authentication failed|is not permitted to log in", message):
        hint = (
            f"The {READER_ROLE} role logs in with TXSTREAM_READER_PASSWORD once `txstream migrate` "
            "(or `txstream up`) set it: run that with the same TXSTREAM_READER_PASSWORD."
        )
    elif embedded:
        hint = "The embedded PostgreSQL is not answering: run `txstream status`, then `txstream up`."
    elif re.search(r"password authentication failed|no password supplied", message):
        hint = "Fix the user or password in TXSTREAM_POSTGRES_URL."
    elif re.search(r"does not exist", message):
        hint = "Create that database/role, or fix the name in TXSTREAM_POSTGRES_URL."
    else:
        hint = "Check the host and port in TXSTREAM_POSTGRES_URL and that the server is up."
    return f"Cannot connect to PostgreSQL at {where}: {message}. {hint}"


def connect(url: str, *, embedded: bool = False, autocommit: bool = False, as_reader: bool = False) -> psycopg.Connection:
    try:
        return psycopg.connect(
            url, autocommit=autocommit, connect_timeout=CONNECT_TIMEOUT_S, application_name="txstream"
        )
    except psycopg.OperationalError as exc:
        raise WarehouseUnavailable(_explain(exc, url, embedded, as_reader)) from None
    except psycopg.ProgrammingError as exc:  # malformed URL
        raise WarehouseUnavailable(
            f"TXSTREAM_POSTGRES_URL={redact_url(url)} is not a valid connection URL: {exc}"
        ) from None


class PostgresResource(dg.ConfigurableResource):
    """PostgreSQL holding raw data, bookkeeping and the dbt marts.

    `url` is set from the TXSTREAM_POSTGRES_URL env var (never a literal);
    unset means the embedded PostgreSQL that `txstream up` started.
    """

    url: str | None = None

    def resolved_url(self) -> str:
        return self.url or LocalStack(get_settings()).postgres_url()

    @property
    def embedded(self) -> bool:
        return not self.url and get_settings().postgres_url is None

    @contextmanager
    def connect(self, autocommit: bool = False) -> Iterator[psycopg.Connection]:
        with connect(self.resolved_url(), embedded=self.embedded, autocommit=autocommit) as conn:
            yield conn

    @contextmanager
    def connect_as_reader(self) -> Iterator[psycopg.Connection]:
        """As the read-only role the dashboards use: for read paths, which then cannot write."""
        url = self.reader_url()
        if url is None:
            # As Grafana's datasource: no password, no login (never the owner role instead).
            raise WarehouseUnavailable(
                f"The read-only role {READER_ROLE} has no password: set TXSTREAM_READER_PASSWORD "
                "(the one Grafana logs in with) and run `txstream migrate`."
            )
        with connect(url, embedded=self.embedded, as_reader=True) as conn:
            yield conn

    def fetch_all(self, query: str | sql.Composable, params: Sequence[Any] | dict | None = None) -> list[tuple]:
        with self.connect() as conn:
            return conn.execute(query, params).fetchall()

    def fetch_one(self, query: str | sql.Composable, params: Sequence[Any] | dict | None = None) -> tuple | None:
        with self.connect() as conn:
            return conn.execute(query, params).fetchone()

    def copy_rows(self, table: str, columns: Sequence[str], rows: Iterable[Sequence[Any]]) -> int:
        """COPY rows into `schema.table`; returns how many were written."""
        schema, _, name = table.rpartition(".")
        statement = sql.SQL("COPY {} ({}) FROM STDIN").format(
            sql.Identifier(*(part for part in (schema, name) if part)),
            sql.SQL(", ").join(map(sql.Identifier, columns)),
        )
        written = 0
        with self.connect() as conn, conn.cursor() as cur, cur.copy(statement) as copy:
            for row in rows:
                copy.write_row(row)
                written += 1
        return written

    def migrate(self) -> list[str]:
        """Bring the schema up to date; also lets the read-only role log in when it has a password."""
        with self.connect() as conn:
            applied = migrate(conn)
            reader_password = LocalStack(get_settings()).reader_password()
            if reader_password:
                set_reader_password(conn, reader_password)
        return applied

    def reader_url(self) -> str | None:
        """Connection URL of the read-only role (dashboards), when it has a password."""
        password = LocalStack(get_settings()).reader_password()
        if not password:
            return None
        info = psycopg.conninfo.conninfo_to_dict(self.resolved_url())
        info.update(user=READER_ROLE, password=password)
        return psycopg.conninfo.make_conninfo(**info)
