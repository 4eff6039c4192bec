"""`txstream`: the command line. Each command lives in its own module, imported only when it runs, so
`txstream --help` (and every command's `--help`) answers at once, with nothing running."""

from __future__ import annotations

import importlib
import sys

import click

# name → (module:attribute, one-line help shown by `txstream --help` without importing the module)
COMMANDS = {
    "up": (
        "txstream_dagster.dev.commands:up",
        "Start the embedded PostgreSQL and Apache Kafka, migrate, create the topic.",
    ),
    "down": ("txstream_dagster.dev.commands:down", "Stop the embedded services this machine started."),
    "status": (
        "txstream_dagster.dev.commands:status",
        "Show whether PostgreSQL and Kafka answer, embedded or external.",
    ),
    "dev": (
        "txstream_dagster.dev.commands:dev",
        "Start the embedded stack and serve Dagster (UI, sensors, automation) until Ctrl-C.",
    ),
    "demo": (
        "txstream_dagster.dev.commands:demo",
        "Everything end to end: stack, charges, Spark, forex, dbt, a summary, the UI.",
    ),
    "migrate": (
        "txstream_dagster.cli.migrate:migrate",
        "Apply pending database migrations and set the logins' passwords.",
    ),
    "topic": ("txstream_dagster.cli.topic:topic", "Manage the event topic."),
    "produce": (
        "txstream_dagster.cli.produce:produce",
        "Publish Stripe objects to Kafka: pulled from Stripe, or synthetic.",
    ),
    "stream": ("txstream_dagster.cli.stream:stream", "Run the streaming job from a terminal (catch-up or continuous)."),
    "quarantine": (
        "txstream_dagster.cli.quarantine:quarantine",
        "List quarantined messages; replay them through the current transform.",
    ),
    "dbt": (
        "txstream_dagster.cli.dbt:dbt_command",
        "Run dbt on dbt_project/ against the warehouse, as the transformer.",
    ),
}


class LazyGroup(click.Group):
    """Imports a command's module only when that command runs (or shows its own help). Operational
    failures print as one clear line (they say what to do), not a traceback."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return list(COMMANDS)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name not in COMMANDS:
            return None
        module, _, attribute = COMMANDS[cmd_name][0].partition(":")
        return getattr(importlib.import_module(module), attribute)

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        with formatter.section("Commands"):
            formatter.write_dl([(name, short_help) for name, (_, short_help) in COMMANDS.items()])

    def invoke(self, ctx: click.Context):
        try:
            return super().invoke(ctx)
        except click.exceptions.Exit:  # a RuntimeError too: how click ends `--help`
            raise
        except RuntimeError as exc:
            from txstream_dagster.cli.output import console

            console.print(f"[red]✗[/red] {exc}")
            sys.exit(1)


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
def main() -> None:
    """txstream: Stripe → Kafka → Spark → PostgreSQL → dbt → Grafana, orchestrated by Dagster."""
