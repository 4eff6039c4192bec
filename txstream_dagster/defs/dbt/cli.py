"""`txstream dbt …`: run dbt on the txstream project against the warehouse txstream uses.

The connection comes from TXSTREAM_POSTGRES_URL (or the embedded PostgreSQL), the
same way the Dagster assets get it, so `txstream dbt build --target dev` needs no
profile of your own.
"""

from __future__ import annotations

import os
import subprocess
import sys

import click

from txstream_dagster.currencies import dbt_project_dir
from txstream_dagster.defs.dbt.resources import dbt_connection_env, dbt_executable
from txstream_dagster.db.logins import Login
from txstream_dagster.resources import PostgresResource


@click.command(
    "dbt",
    context_settings={"ignore_unknown_options": True, "allow_interspersed_args": False, "help_option_names": []},
)
@click.argument("dbt_args", nargs=-1, type=click.UNPROCESSED)
def dbt_command(dbt_args: tuple[str, ...]) -> None:
    """Run dbt (any arguments, e.g. `build --target dev`) on dbt_project/ against the warehouse."""
    project_dir = str(dbt_project_dir())
    env = {
        **os.environ,
        **dbt_connection_env(PostgresResource().url_for(Login.TRANSFORMER)),
        "DBT_PROJECT_DIR": project_dir,
        "DBT_PROFILES_DIR": project_dir,
    }
    completed = subprocess.run([dbt_executable(), *dbt_args], cwd=project_dir, env=env, check=False)
    sys.exit(completed.returncode)
