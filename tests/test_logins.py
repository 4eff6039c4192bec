"""Least privilege: each login does its own job in the real PostgreSQL and nothing else.

The writer (stream, forex, cursors) reads and writes raw and ops; the transformer (dbt) reads raw
and ops and owns the marts; the reader (dashboards) reads marts and monitoring; the owner only
migrates. Passwords reach the server as SCRAM verifiers, never in clear.
"""

from __future__ import annotations

import secrets
from urllib.parse import urlsplit, urlunsplit

import psycopg
import pytest

from resource_helpers import with_fields
from txstream_dagster.db import migrate as migrate_module
from txstream_dagster.db.logins import Login
from txstream_dagster.db.migrate import available_migrations, migrate, upgrade_warehouse
from txstream_dagster.dev.stack import LocalStack
from txstream_dagster.resources import PostgresResource
from txstream_dagster.resources.build import login_passwords, warehouse
from txstream_dagster.resources.postgres import WarehouseUnavailable
from txstream_dagster.settings import load_settings

LOGINS_MIGRATION = 7


def in_database(url: str, database: str) -> str:
    return urlunsplit(urlsplit(url)._replace(path=f"/{database}"))


def current_user(postgres: PostgresResource, login: Login) -> str:
    return postgres.fetch_one("SELECT current_user", login=login)[0]


def assert_denied(postgres: PostgresResource, login: Login, statements: list[str]) -> None:
    for statement in statements:
        with postgres.connect(login=login) as conn, pytest.raises(psycopg.errors.InsufficientPrivilege):
            conn.execute(statement)


def test_each_pipeline_part_signs_in_as_its_own_login(postgres: PostgresResource):
    assert postgres.login is Login.WRITER  # what every asset, check and sensor uses unless told otherwise
    for login in (Login.WRITER, Login.TRANSFORMER, Login.READER):
        assert current_user(postgres, login) == login
    assert current_user(postgres, Login.OWNER) == "txstream"


def test_the_writer_fills_raw_and_ops_and_cannot_touch_the_marts(clean_warehouse: PostgresResource):
    with clean_warehouse.connect(login=Login.WRITER) as conn:
        conn.execute(
            "INSERT INTO raw.forex_rates (rate_date, base, quote, rate, effective_date, source) "
            "VALUES ('2024-01-02', 'gbp', 'usd', 1.27, '2024-01-02', 'test')"
        )
        conn.execute("INSERT INTO ops.source_cursors (source, stream, position) VALUES ('test', 'charges', '{}')")
    assert_denied(
        clean_warehouse,
        Login.WRITER,
        [
            "CREATE TABLE marts.intruder (x int)",
            "CREATE TABLE raw.intruder (x int)",
            "SELECT 1 FROM marts.fct_transactions",
            "TRUNCATE raw.transactions",
            "DELETE FROM raw.transactions",
            "INSERT INTO ops.dbt_node_runs (invocation_id, unique_id, resource_type, status, completed_at) "
            "VALUES ('i', 'u', 'model', 'success', now())",
            "CREATE ROLE intruder",
        ],
    )


def test_the_transformer_reads_raw_builds_marts_and_cannot_write_raw(postgres: PostgresResource):
    with postgres.connect(login=Login.TRANSFORMER) as conn:
        conn.execute("SELECT count(*) FROM raw.transactions, ops.stream_batches LIMIT 1")
        conn.execute("CREATE TABLE marts.transformer_probe AS SELECT 1 AS x")
        conn.execute("DROP TABLE marts.transformer_probe")
        conn.execute("CREATE VIEW monitoring_dev.transformer_probe AS SELECT 1 AS x")  # a dev build's schema
        conn.rollback()
    assert_denied(
        postgres,
        Login.TRANSFORMER,
        [
            "INSERT INTO raw.forex_rates (rate_date, base, quote, rate, effective_date, source) "
            "VALUES ('2024-01-02', 'gbp', 'usd', 1, '2024-01-02', 't')",
            "UPDATE raw.transactions SET amount = 0",
            "UPDATE ops.stream_offsets SET next_offset = 0",
            "CREATE TABLE raw.intruder (x int)",
        ],
    )


def test_the_reader_reads_what_the_transformer_builds_and_nothing_raw(postgres: PostgresResource):
    with postgres.connect(login=Login.TRANSFORMER) as conn:
        conn.execute("CREATE TABLE marts.reader_probe AS SELECT 42 AS answer")
    try:
        assert postgres.fetch_one("SELECT answer FROM marts.reader_probe", login=Login.READER) == (42,)
        assert_denied(
            postgres,
            Login.READER,
            [
                "SELECT 1 FROM raw.transactions",
                "SELECT 1 FROM ops.stream_offsets",
                "CREATE TABLE marts.intruder (x int)",
                "DELETE FROM marts.reader_probe",
            ],
        )
    finally:
        with postgres.connect(login=Login.TRANSFORMER) as conn:
            conn.execute("DROP TABLE marts.reader_probe")


@pytest.fixture
def statements_logged(local_stack: LocalStack):
    """Every statement the server receives goes to its log, as with log_statement = 'all'."""
    superuser = local_stack.postgres.url("postgres", database="txstream")
    with psycopg.connect(superuser, autocommit=True) as conn:
        conn.execute("ALTER SYSTEM SET log_statement = 'all'")
        conn.execute("SELECT pg_reload_conf()")
    yield local_stack.postgres.log_path
    with psycopg.connect(superuser, autocommit=True) as conn:
        conn.execute("ALTER SYSTEM RESET log_statement")
        conn.execute("SELECT pg_reload_conf()")


def test_migrate_sets_each_password_without_sending_it(statements_logged, postgres, monkeypatch):
    log_before = statements_logged.read_text()
    passwords = {login: f"probe-{secrets.token_hex(8)}" for login in (Login.WRITER, Login.TRANSFORMER, Login.READER)}
    for login, password in passwords.items():
        monkeypatch.setenv(login.password_variable, password)
    try:
        settings = load_settings()
        upgrade_warehouse(postgres, login_passwords(settings))
        configured = with_fields(postgres, **{login.password_field: pw for login, pw in passwords.items()})
        for login in passwords:
            assert current_user(configured, login) == login  # signed in with the new password
        logged = statements_logged.read_text()[len(log_before) :]
        assert "ALTER ROLE" in logged and "SCRAM-SHA-256$" in logged  # the statements were logged…
        for password in passwords.values():
            assert password not in logged  # …and no password in them
    finally:
        monkeypatch.undo()
        upgrade_warehouse(postgres, login_passwords(load_settings()))  # back to the embedded server's own
    assert current_user(postgres, Login.WRITER) == Login.WRITER


def test_a_login_without_a_password_says_which_variable_to_set(monkeypatch):
    monkeypatch.setenv("TXSTREAM_POSTGRES_URL", "postgresql://warehouse.example.internal:5432/txstream")
    with pytest.raises(WarehouseUnavailable, match="set TXSTREAM_TRANSFORMER_PASSWORD where this runs"):
        warehouse(load_settings()).url_for(Login.TRANSFORMER)


def test_a_wrong_login_password_says_to_run_migrate_with_it(postgres):
    with pytest.raises(WarehouseUnavailable, match="TXSTREAM_WRITER_PASSWORD once `txstream migrate`") as raised:
        with_fields(postgres, writer_password="not-what-migrate-set").fetch_one("SELECT 1")
    assert "not-what-migrate-set" not in str(raised.value)


@pytest.fixture
def warehouse_from_before_the_logins(local_stack: LocalStack, postgres: PostgresResource, monkeypatch):
    """A second database migrated to just before 0007, with what dbt and the stream built as the owner then."""
    superuser = local_stack.postgres.url("postgres", database="postgres")
    with psycopg.connect(superuser, autocommit=True) as conn:
        conn.execute("DROP DATABASE IF EXISTS upgrade_probe WITH (FORCE)")
        conn.execute("CREATE DATABASE upgrade_probe OWNER txstream")
    with monkeypatch.context() as patch:
        patch.setattr(
            migrate_module,
            "available_migrations",
            lambda: [m for m in available_migrations() if m.version < LOGINS_MIGRATION],
        )
        with psycopg.connect(local_stack.postgres.url(database="upgrade_probe")) as conn:
            migrate(conn)
            conn.execute("CREATE TABLE marts.fct_transactions AS SELECT 'ch_1' AS charge_id")
            conn.execute("CREATE VIEW monitoring.pipeline_freshness AS SELECT now() AS checked_at")
            conn.execute("CREATE UNLOGGED TABLE ops.stream_staging_0123456789ab_old (LIKE ops.stream_staging_template)")
    yield local_stack.postgres.url(database="upgrade_probe")
    with psycopg.connect(superuser, autocommit=True) as conn:
        conn.execute("DROP DATABASE upgrade_probe WITH (FORCE)")


def test_upgrading_hands_what_dbt_built_to_the_transformer(warehouse_from_before_the_logins, postgres):
    with psycopg.connect(warehouse_from_before_the_logins) as conn:
        # 0007 first, then whatever later migrations there are.
        assert migrate(conn)[0] == f"{LOGINS_MIGRATION:04d}_least_privilege_logins"
        owners = dict(
            conn.execute(
                """SELECT n.nspname || '.' || c.relname, pg_get_userbyid(c.relowner) FROM pg_class c
               JOIN pg_namespace n ON n.oid = c.relnamespace
               WHERE n.nspname IN ('marts', 'monitoring') OR c.relname LIKE 'stream_staging_%'"""
            ).fetchall()
        )
    assert owners == {
        "marts.fct_transactions": Login.TRANSFORMER,
        "monitoring.pipeline_freshness": Login.TRANSFORMER,
        "ops.stream_staging_template": "txstream",  # the old writer's staging table is gone
    }
    # Logins are cluster-wide: the session database's URLs, pointed at this database.
    transformer = in_database(postgres.url_for(Login.TRANSFORMER), "upgrade_probe")
    with psycopg.connect(transformer) as conn:  # dbt can replace what it built before the upgrade
        conn.execute("DROP TABLE marts.fct_transactions")
        conn.execute("CREATE TABLE marts.fct_transactions AS SELECT 'ch_2' AS charge_id")
    reader = in_database(postgres.url_for(Login.READER), "upgrade_probe")
    with psycopg.connect(reader) as conn:  # and the dashboards still read it
        assert conn.execute("SELECT charge_id FROM marts.fct_transactions").fetchall() == [("ch_2",)]
        assert conn.execute("SELECT count(*) FROM monitoring.pipeline_freshness").fetchone() == (1,)
