"""The warehouse: PostgreSQL, and the logins txstream signs in to it as."""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any
from urllib.parse import quote, urlsplit, urlunsplit

import dagster as dg
import psycopg
from psycopg import sql

from txstream_dagster.db.logins import Login
from txstream_spark.redaction import redact_url

CONNECT_TIMEOUT_S = 5


class WarehouseUnavailable(RuntimeError):
    pass


def _explain(exc: psycopg.OperationalError, url: str, embedded: bool, login: Login) -> str:
    message = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    password = psycopg.conninfo.conninfo_to_dict(url).get("password")
    if password:
        message = message.replace(str(password), "***")
    where = redact_url(url)
    refused = re.search(r"password authentication failed|is not permitted to log in|no password supplied", message)
    # With the embedded server, a login without its own password uses the server's password file.
    if refused and login is not Login.OWNER and (password or not embedded):
        hint = (
            f"The {login} login signs in with {login.password_variable} once `txstream migrate` (or "
            f"`txstream up`) set it: run that with the same {login.password_variable}."
        )
    elif embedded:
        hint = "The embedded PostgreSQL is not answering: run `txstream status`, then `txstream up`."
    elif refused:
        hint = "Put the database owner's user and password in TXSTREAM_POSTGRES_URL where migrations run."
    elif re.search(r"does not exist", message):
        hint = "Create that database/role, or fix the name in TXSTREAM_POSTGRES_URL."
    else:
        hint = "Check the host and port in TXSTREAM_POSTGRES_URL and that the server is up."
    return f"Cannot connect to PostgreSQL at {where} as {login}: {message}. {hint}"


def connect(
    url: str, *, embedded: bool = False, autocommit: bool = False, login: Login = Login.OWNER
) -> psycopg.Connection:
    try:
        return psycopg.connect(
            url, autocommit=autocommit, connect_timeout=CONNECT_TIMEOUT_S, application_name="txstream"
        )
    except psycopg.OperationalError as exc:
        raise WarehouseUnavailable(_explain(exc, url, embedded, login)) from None
    except psycopg.ProgrammingError as exc:  # malformed URL
        raise WarehouseUnavailable(
            f"TXSTREAM_POSTGRES_URL={redact_url(url)} is not a valid connection URL: {exc}"
        ) from None


def with_credentials(url: str, user: str, password: str | None = None) -> str:
    """`url` (postgresql://[anyone@]host:port/db?…) signing in as `user` instead; without a password,
    libpq looks it up in the URL's `passfile`."""
    parts = urlsplit(url)
    address = parts.netloc.rpartition("@")[2]
    userinfo = quote(user, safe="") + (f":{quote(password, safe='')}" if password is not None else "")
    return urlunsplit(parts._replace(netloc=f"{userinfo}@{address}"))


class PostgresResource(dg.ConfigurableResource):
    """PostgreSQL holding raw data, bookkeeping and the dbt marts.

    `url` says where the server is (with the owner's credentials only where migrations run);
    each pipeline login signs in with its own password, or with the one libpq finds in the
    URL's `passfile` (the embedded server's). Connections sign in as `login` unless
    told otherwise: the writer by default, the transformer for dbt, the reader for dashboards
    and reports, the owner only to migrate. `resources/build.py` fills the fields from the
    settings: from the embedded PostgreSQL, or from TXSTREAM_POSTGRES_URL and the
    TXSTREAM_*_PASSWORD variables.
    """

    url: str
    login: Login = Login.WRITER
    writer_password: str | None = None
    transformer_password: str | None = None
    reader_password: str | None = None
    embedded: bool = False  # the embedded server: a connection error says to run `txstream up`

    def password_of(self, login: Login) -> str | None:
        return getattr(self, login.password_field)

    def url_for(self, login: Login | None = None) -> str:
        """Where and as whom `login` (default: this resource's) connects."""
        login = login or self.login
        if login is Login.OWNER:
            return self.url
        password = self.password_of(login)
        if not password and "passfile" in psycopg.conninfo.conninfo_to_dict(self.url):
            return with_credentials(self.url, str(login))
        if not password:
            raise WarehouseUnavailable(
                f"The {login} login has no password: set {login.password_variable} where this runs, and run "
                "`txstream migrate` once with it (that lets the login sign in)."
            )
        return with_credentials(self.url, str(login), password)

    @contextmanager
    def connect(self, autocommit: bool = False, login: Login | None = None) -> Iterator[psycopg.Connection]:
        login = login or self.login
        with connect(self.url_for(login), embedded=self.embedded, autocommit=autocommit, login=login) as conn:
            yield conn

    def fetch_all(
        self,
        query: str | sql.SQL | sql.Composed,
        params: Sequence[Any] | dict | None = None,
        login: Login | None = None,
    ) -> list[tuple]:
        with self.connect(login=login) as conn:
            return conn.execute(query, params).fetchall()

    def fetch_one(
        self,
        query: str | sql.SQL | sql.Composed,
        params: Sequence[Any] | dict | None = None,
        login: Login | None = None,
    ) -> tuple | None:
        with self.connect(login=login) as conn:
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
