"""How dbt reaches the warehouse: connection env vars derived from the warehouse URL, and the dbt CLI resource.

dbt_project/profiles.yml reads only env vars (no database is written down
anywhere). They are derived here from the URL the rest of txstream uses —
TXSTREAM_POSTGRES_URL, or the embedded PostgreSQL — so the embedded stack works
with no configuration and dbt can never point at a different database than the
stream and the forex asset.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path

import psycopg
from dagster_dbt import DbtCliResource, DbtProject

from txstream_dagster.settings import redact_url

# The profile reads these (dbt scrubs DBT_ENV_SECRET_* values from its logs).
HOST, PORT, USER, PASSWORD, DATABASE, SSLMODE = (
    "DBT_PG_HOST", "DBT_PG_PORT", "DBT_PG_USER", "DBT_ENV_SECRET_PG_PASSWORD", "DBT_PG_DATABASE", "DBT_PG_SSLMODE",
)
# URL parameters the profile passes on; anything else would be silently dropped.
PASSED_ON_PARAMETERS = {"host", "port", "user", "password", "dbname", "sslmode"}


def dbt_connection_env(warehouse_url: str) -> dict[str, str]:
    """The env vars dbt_project/profiles.yml reads, for `warehouse_url` (postgresql://user:pw@host:port/db)."""
    try:
        info = psycopg.conninfo.conninfo_to_dict(warehouse_url)
    except psycopg.ProgrammingError as exc:
        raise ValueError(f"TXSTREAM_POSTGRES_URL={redact_url(warehouse_url)} is not a valid connection URL: {exc}") from None
    dropped = sorted(set(info) - PASSED_ON_PARAMETERS)
    if dropped:
        raise ValueError(
            f"TXSTREAM_POSTGRES_URL={redact_url(warehouse_url)} sets {', '.join(dropped)}, which dbt's profile "
            "does not pass on: remove them from the URL or add them to dbt_project/profiles.yml and "
            "txstream_dagster/defs/dbt/resources.py."
        )
    missing = [name for name in ("host", "user", "dbname") if not info.get(name)]
    if missing:
        raise ValueError(
            f"TXSTREAM_POSTGRES_URL={redact_url(warehouse_url)} has no {' or '.join(missing)}: "
            "use postgresql://user:password@host:port/database."
        )
    env = {
        HOST: str(info["host"]),
        PORT: str(info.get("port") or 5432),
        USER: str(info["user"]),
        PASSWORD: str(info.get("password") or ""),
        DATABASE: str(info["dbname"]),
    }
    if info.get("sslmode"):
        env[SSLMODE] = str(info["sslmode"])
    return env


@contextmanager
def dbt_connection(warehouse_url: str) -> Iterator[Mapping[str, str]]:
    """Set the connection env vars for the dbt invocations started inside the block.

    dagster-dbt hands dbt a copy of os.environ (and reads it to open its own adapter
    for row counts), so the variables must be in the process environment while dbt runs.
    """
    env = dbt_connection_env(warehouse_url)
    previous = {name: os.environ.get(name) for name in (HOST, PORT, USER, PASSWORD, DATABASE, SSLMODE)}
    os.environ.update(env)
    if SSLMODE not in env:
        os.environ.pop(SSLMODE, None)
    try:
        yield env
    finally:
        for name, value in previous.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def dbt_executable() -> str:
    """The venv's dbt, next to the running interpreter (it need not be on PATH)."""
    return str(Path(sys.executable).parent / "dbt")


def dbt_cli_resource(project: DbtProject) -> DbtCliResource:
    return DbtCliResource(project_dir=project, dbt_executable=dbt_executable())
