"""How dbt reaches the warehouse: a profiles.yml for the transformer login, and the dbt CLI resource.

The profile is written from the URL the rest of txstream uses (TXSTREAM_POSTGRES_URL,
or the embedded PostgreSQL) when the resources are built (`resources/build.py`), so
dbt can never point at a different database than the stream and the forex asset, and
no process's environment is changed to tell dbt where to connect.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import psycopg
import yaml
from dagster_dbt import DbtCliResource, DbtProject

from txstream_dagster.db.logins import Login
from txstream_dagster.files import PRIVATE, replace_file
from txstream_spark.redaction import redact_url

PROFILE = "txstream"  # dbt_project.yml's `profile:`
# URL parameters the profile accounts for: host, port, dbname and sslmode are passed on; the URL's user,
# password and passfile give way to the transformer login and the password the profile is given.
ACCOUNTED_FOR_PARAMETERS = {"host", "port", "dbname", "sslmode", "user", "password", "passfile"}


def dbt_profile(warehouse_url: str, password: str) -> dict[str, Any]:
    """profiles.yml for `warehouse_url`, signing in as the transformer with `password`: a value, or an
    `{{ env_var('…') }}` that dbt resolves in its own process. Pure.

    Two targets: `full` (everything in raw.transactions) and `dev`, a deterministic sample of the last
    `dev_window_days` of charges built into the `_dev` schemas (macros/generate_schema_name.sql)."""
    try:
        info = psycopg.conninfo.conninfo_to_dict(warehouse_url)
    except psycopg.ProgrammingError as exc:
        raise ValueError(
            f"TXSTREAM_POSTGRES_URL={redact_url(warehouse_url)} is not a valid connection URL: {exc}"
        ) from None
    dropped = sorted(set(info) - ACCOUNTED_FOR_PARAMETERS)
    if dropped:
        raise ValueError(
            f"TXSTREAM_POSTGRES_URL={redact_url(warehouse_url)} sets {', '.join(dropped)}, which dbt's profile "
            "does not pass on: remove them from the URL or add them to txstream_dagster/defs/dbt/resources.py."
        )
    missing = [name for name in ("host", "dbname") if not info.get(name)]
    if missing:
        raise ValueError(
            f"TXSTREAM_POSTGRES_URL={redact_url(warehouse_url)} has no {' or '.join(missing)}: "
            "use postgresql://user:password@host:port/database."
        )
    target: dict[str, Any] = {
        "type": "postgres",
        "host": str(info["host"]),
        "port": int(info.get("port") or 5432),
        "user": str(Login.TRANSFORMER),
        "password": password,
        "dbname": str(info["dbname"]),
        # Models without a custom schema land where dashboards cannot read them.
        "schema": "staging",
        "threads": 2,
        "connect_timeout": 10,
    }
    if info.get("sslmode"):
        target["sslmode"] = str(info["sslmode"])
    return {PROFILE: {"target": "full", "outputs": {"full": target, "dev": target}}}


def write_profiles_dir(directory: Path, profile: dict[str, Any]) -> Path:
    """`directory`/profiles.yml holding `profile`, readable by this user only, replaced atomically."""
    directory.mkdir(parents=True, exist_ok=True, mode=0o700)
    replace_file(directory / "profiles.yml", yaml.safe_dump(profile, sort_keys=False).encode(), PRIVATE)
    return directory


def dbt_executable() -> str:
    """The venv's dbt, next to the running interpreter (it need not be on PATH)."""
    return str(Path(sys.executable).parent / "dbt")


def dbt_cli_resource(project: DbtProject, profiles_dir: Path) -> DbtCliResource:
    return DbtCliResource(project_dir=project, dbt_executable=dbt_executable(), profiles_dir=str(profiles_dir))
