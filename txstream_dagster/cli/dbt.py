"""`txstream dbt …`: run dbt on the txstream project against the warehouse txstream uses.

dbt signs in as the transformer with the profile txstream writes from TXSTREAM_POSTGRES_URL
(or the embedded PostgreSQL), the same one the Dagster assets use, so
`txstream dbt build --target dev` needs no profile of your own.
"""

from __future__ import annotations

import os
import subprocess
import sys

import click

HELP_FLAGS = {"-h", "--help"}


@click.command(
    "dbt",
    context_settings={
        "ignore_unknown_options": True,
        "allow_interspersed_args": False,
        "help_option_names": ["-h", "--help"],
    },
)
@click.argument("dbt_args", nargs=-1, type=click.UNPROCESSED)
def dbt_command(dbt_args: tuple[str, ...]) -> None:
    """Run dbt (any arguments, e.g. `build --target dev`) on dbt_project/ against the warehouse.

    `txstream dbt <command> --help` shows dbt's own help for that command.
    """
    from txstream_dagster.defs.dbt.resources import dbt_executable
    from txstream_dagster.paths import dbt_project_dir

    project_dir = str(dbt_project_dir())
    env = {**os.environ, "DBT_PROJECT_DIR": project_dir, "DBT_PROFILES_DIR": project_dir}
    if not HELP_FLAGS & set(dbt_args):  # dbt's help needs no warehouse
        from txstream_dagster.cli.output import settings_or_exit
        from txstream_dagster.db.logins import Login
        from txstream_dagster.resources.build import dbt_profiles_dir

        settings = settings_or_exit()
        env["DBT_PROFILES_DIR"] = str(dbt_profiles_dir(settings))
        if settings.transformer_password is not None:  # the profile names it; a .env file may be what holds it
            env[Login.TRANSFORMER.password_variable] = settings.transformer_password.get_secret_value()
    completed = subprocess.run([dbt_executable(), *dbt_args], cwd=project_dir, env=env, check=False)
    sys.exit(completed.returncode)
