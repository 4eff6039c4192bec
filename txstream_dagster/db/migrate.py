"""Versioned, idempotent SQL migrations: `NNNN_name.sql`, applied once each, in order.

All pending files run in one transaction under an advisory lock, so concurrent
starters (two Dagster runs, `txstream up` and a test) never race. A file that
changed after it was applied is refused: write a new migration instead.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass
from importlib import resources

import psycopg
from psycopg import sql

from txstream_dagster.db.logins import Login
from txstream_dagster.resources.postgres import PostgresResource

MIGRATIONS_PACKAGE = "txstream_dagster.db.migrations"
# Any constant works; it only has to be the same for every txstream process.
ADVISORY_LOCK_KEY = 0x7478_7374  # "txst"


@dataclass(frozen=True)
class Migration:
    version: int
    name: str
    sql: str

    @property
    def checksum(self) -> str:
        return hashlib.sha256(self.sql.encode()).hexdigest()


def available_migrations() -> list[Migration]:
    migrations = []
    for entry in resources.files(MIGRATIONS_PACKAGE).iterdir():
        if entry.name.endswith(".sql"):
            version, _, name = entry.name.removesuffix(".sql").partition("_")
            migrations.append(Migration(int(version), name, entry.read_text()))
    migrations.sort(key=lambda m: m.version)
    versions = [m.version for m in migrations]
    if len(set(versions)) != len(versions):
        raise RuntimeError(f"Two migrations share a version number in {MIGRATIONS_PACKAGE}: {versions}")
    return migrations


def migrate(conn: psycopg.Connection) -> list[str]:
    """Apply pending migrations; returns the names applied (empty when up to date)."""
    applied_now = []
    with conn.transaction():
        conn.execute("SELECT pg_advisory_xact_lock(%s)", [ADVISORY_LOCK_KEY])
        conn.execute("CREATE SCHEMA IF NOT EXISTS ops")
        conn.execute(
            """CREATE TABLE IF NOT EXISTS ops.schema_migrations (
                   version integer PRIMARY KEY,
                   name text NOT NULL,
                   checksum text NOT NULL,
                   applied_at timestamptz NOT NULL DEFAULT now())"""
        )
        applied: dict[int, str] = dict(conn.execute("SELECT version, checksum FROM ops.schema_migrations").fetchall())
        for migration in available_migrations():
            if migration.version in applied:
                if applied[migration.version] != migration.checksum:
                    raise RuntimeError(
                        f"Migration {migration.version:04d}_{migration.name}.sql changed after it was applied "
                        "to this database. Never edit an applied migration: revert the file and add a new one."
                    )
                continue
            conn.execute(sql.SQL(migration.sql))
            conn.execute(
                "INSERT INTO ops.schema_migrations (version, name, checksum) VALUES (%s, %s, %s)",
                [migration.version, migration.name, migration.checksum],
            )
            applied_now.append(f"{migration.version:04d}_{migration.name}")
    return applied_now


def set_login_password(conn: psycopg.Connection, role: str, password: str) -> None:
    """Let `role` log in with `password`.

    libpq turns the password into a SCRAM-SHA-256 verifier here, so the statement the server
    receives (and may log, with log_statement = 'ddl') never holds the password itself."""
    verifier = conn.pgconn.encrypt_password(password.encode(), role.encode(), b"scram-sha-256").decode()
    conn.execute(sql.SQL("ALTER ROLE {} LOGIN PASSWORD {}").format(sql.Identifier(role), sql.Literal(verifier)))


def upgrade_warehouse(postgres: PostgresResource, passwords: Mapping[Login, str]) -> list[str]:
    """`txstream migrate`: bring the schema up to date as the owner, then let each pipeline login in
    `passwords` sign in with its password. Returns the migrations applied."""
    with postgres.connect(login=Login.OWNER) as conn:
        applied = migrate(conn)
        for login, password in passwords.items():
            set_login_password(conn, login, password)
    return applied
