"""The command line answers `--help` at once, for every command, with nothing running."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from txstream_dagster.cli import COMMANDS

HELP_IN_A_FRESH_PROCESS = """
import sys
from click.testing import CliRunner
from txstream_dagster.cli import main

result = CliRunner().invoke(main, sys.argv[1:])
heavy = sorted(name for name in ("dagster", "dagster_dbt", "pyspark", "kafka", "psycopg") if name in sys.modules)
print(result.exit_code, heavy)
print(result.output)
"""


def help_of(*args: str) -> tuple[str, str]:
    # A data dir that holds nothing and ports nothing listens on: no service is running for it.
    env = {
        **os.environ,
        "TXSTREAM_DATA_DIR": "/nonexistent/txstream",
        "TXSTREAM_LOCAL_POSTGRES_PORT": "1",
        "TXSTREAM_LOCAL_KAFKA_PORT": "2",
    }
    done = subprocess.run(
        [sys.executable, "-c", HELP_IN_A_FRESH_PROCESS, *args, "--help"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    status, output = done.stdout.split("\n", 1)
    return status, output


def test_the_top_level_help_lists_every_command_without_importing_the_pipeline():
    status, output = help_of()
    assert status == "0 []"
    for name in COMMANDS:
        assert f"  {name} " in output


@pytest.mark.parametrize(
    "command", [[name] for name in COMMANDS] + [["topic", "create"], ["stream", "reset"], ["quarantine", "replay"]]
)
def test_each_commands_help_needs_no_service_and_imports_no_pipeline_module(command):
    # Regression: `txstream dbt --help` failed when PostgreSQL was not running, and every --help took ~4 s
    # because each command imported Dagster, Spark and Kafka clients before parsing its arguments.
    status, output = help_of(*command)
    assert status == "0 []", output
    assert "Usage: " in output
