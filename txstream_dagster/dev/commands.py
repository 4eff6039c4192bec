"""`txstream up|down|status|demo`: the embedded stack on this machine, and the whole product on it.

Each command imports what it uses when it runs, so `--help` answers at once.
"""

from __future__ import annotations

import random
import sys
from collections.abc import Callable

import click

from txstream_dagster.cli.output import console, settings_or_exit


@click.command()
def up() -> None:
    """Start the embedded PostgreSQL and Apache Kafka (what is not configured), migrate, create the topic."""
    start_stack(settings_or_exit())


def start_stack(settings) -> None:
    """What `txstream up` does: start what is embedded, migrate, create the topic; say each step."""
    from txstream_dagster.db.migrate import upgrade_warehouse
    from txstream_dagster.dev.stack import LocalStack
    from txstream_dagster.resources.build import event_log, login_passwords, warehouse

    for line in LocalStack(settings).up():
        console.print(f"[green]✓[/green] {line}")
    applied = upgrade_warehouse(warehouse(settings), login_passwords(settings))
    console.print("[green]✓[/green] schema up to date" + (f" (applied {', '.join(applied)})" if applied else ""))
    kafka = event_log(settings)
    created = kafka.ensure_topic()
    console.print(f"[green]✓[/green] topic {kafka.topic} {'created' if created else 'exists'}")


@click.command()
def down() -> None:
    """Stop the embedded services this machine started."""
    from txstream_dagster.dev.stack import LocalStack

    done = LocalStack(settings_or_exit()).down()
    for line in done or ["nothing was running"]:
        console.print(f"[green]✓[/green] {line}")


def _reported(service: str, check: Callable[[], str]) -> bool:
    """Print what `check` found (one line), or why it failed: status reports every failure the same way."""
    try:
        console.print(f"[green]✓[/green] {check()}")
    except Exception as exc:  # noqa: BLE001 - any failure is one line of the report, not a traceback
        console.print(f"[red]✗[/red] {service}: {exc}")
        return False
    return True


@click.command()
def status() -> None:
    """Show whether PostgreSQL and Kafka answer, embedded or external. Exit code 1 when one doesn't."""
    from txstream_dagster.dev.stack import LocalStack
    from txstream_dagster.resources.build import event_log, warehouse
    from txstream_spark.rows import one_row

    settings = settings_or_exit()
    stack = LocalStack(settings)

    def postgres() -> str:
        if settings.embeds_postgres and not stack.postgres.is_running():
            raise RuntimeError(f"the embedded PostgreSQL of {settings.data_dir} is not running: run `txstream up`")
        version, migrations = one_row(
            warehouse(settings).fetch_one(
                "SELECT current_setting('server_version'), "
                "(SELECT count(*) FROM ops.schema_migrations WHERE to_regclass('ops.schema_migrations') IS NOT NULL)"
            )
        )
        where = "embedded" if settings.embeds_postgres else "external"
        return f"PostgreSQL {version} ({where}), {migrations} migrations applied"

    def kafka() -> str:
        if settings.embeds_kafka and not stack.kafka.is_running():
            raise RuntimeError(f"the embedded Kafka of {settings.data_dir} is not running: run `txstream up`")
        brokers = event_log(settings)
        topic = brokers.describe_topic()
        total = sum(brokers.end_offsets().values())
        where = "embedded" if settings.embeds_kafka else "external"
        return (
            f"Kafka at {brokers.bootstrap} ({where}): topic {topic.name}, {topic.partitions} partitions, "
            f"{total} messages"
        )

    healthy = [_reported("PostgreSQL", postgres), _reported("Kafka", kafka)]  # both checked, whatever the first says
    sys.exit(0 if all(healthy) else 1)


@click.command()
@click.option("--port", default=3000, show_default=True, help="Port of the Dagster UI.")
def dev(port: int) -> None:
    """Start the embedded stack and serve Dagster (UI, sensors, schedules, automation) until Ctrl-C.

    The stream sensor keeps the continuous stream running; Ctrl-C stops every process this started,
    runs included, within 10 s (the embedded PostgreSQL and Kafka keep running until `txstream down`).
    """
    from txstream_dagster.dev.dagster_dev import DagsterDev, StackFailed, dagster_dev_env

    settings = settings_or_exit()
    start_stack(settings)
    dagster = DagsterDev(settings, port, dagster_dev_env())
    try:
        with console.status(f"starting dagster dev on {dagster.url}"):
            dagster.start()
        console.print(f"[green]✓[/green] Dagster UI on [bold]{dagster.url}[/bold]. Ctrl-C stops it.")
        assert dagster.process is not None  # start() ran
        dagster.process.wait()
    except StackFailed as exc:
        console.print(f"[red]✗[/red] {exc}")
        sys.exit(1)
    except KeyboardInterrupt:
        pass
    finally:
        with console.status("stopping Dagster and its runs"):
            dagster.stop()
    console.print("stopped: every Dagster process and run (the embedded services run on: `txstream down`)")


@click.command()
@click.option("--charges", default=20_000, show_default=True, help="Synthetic charges to publish.")
@click.option("--days", default=7, show_default=True, help="Days of history they are spread over.")
@click.option("--seed", type=int, default=None, help="Generator seed (default: random, printed).")
@click.option("--port", default=3000, show_default=True, help="Port of the Dagster UI.")
@click.option("--no-ui", is_flag=True, help="Stop Dagster after the summary instead of serving the UI.")
def demo(charges: int, days: int, seed: int | None, port: int, no_ui: bool) -> None:
    """Everything end to end: embedded stack, synthetic charges, Spark, forex, dbt, a summary, the UI."""
    from txstream_dagster.dev.demo import StackFailed, run_demo

    try:
        run_demo(
            settings_or_exit(),
            charges=charges,
            days=days,
            seed=seed if seed is not None else random.randrange(10**6),
            port=port,
            console=console,
            serve=not no_ui,
        )
    except StackFailed:  # run_demo said what went wrong and where to look
        sys.exit(1)
    except KeyboardInterrupt:
        console.print("stopped")
